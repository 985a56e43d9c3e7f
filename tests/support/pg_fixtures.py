"""pytest fixtures for the SQL store's tests on PostgreSQL: one cluster per test
session (started on first use), a fresh database per test.

Register with ``pytest_plugins = ["tests.support.pg_fixtures"]`` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL 15 cluster (fsync off, a free loopback port)."""
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def postgres_dsn(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's cluster, running (a test before may have stopped it)."""
    if not postgres.running:
        postgres.start()
    return postgres.create_database()
