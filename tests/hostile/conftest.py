from tests.live_server import live_server  # noqa: F401  (fixtures)
from tests.staff.conftest import make_world, transfer_date  # noqa: F401
