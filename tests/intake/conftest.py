from tests.browser import browser, page  # noqa: F401  (fixtures)
from tests.live_server import live_server  # noqa: F401
