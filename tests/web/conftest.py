from tests.staff.conftest import make_world  # noqa: F401  (fixtures)
