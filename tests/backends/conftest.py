# Temporary: until tests/conftest.py lists tests.support.pg_fixtures in pytest_plugins.
from tests.support.pg_fixtures import postgres, postgres_dsn  # noqa: F401
