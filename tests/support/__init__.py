"""Helpers shared by the tests, one module per kind (these names are re-exported here):

- :mod:`tests.support.fakes`: ``FakeClock``, ``VirtualClock``, ``FakeConn``;
- :mod:`tests.support.sockets`: ``free_port``, ``Socket`` (a JSON WebSocket client), ``Closed``, ``RECV_TIMEOUT_S``;
- :mod:`tests.support.procs`: ``ServerProcess`` and ``BlockingServerProcess`` (``server.py`` in a child
  process), ``RedisServer``, ``REPO``;
- :mod:`tests.support.backends`: both back-ends behind one test handle.
"""

from tests.support.fakes import FakeClock, FakeConn, VirtualClock
from tests.support.procs import REPO, BlockingServerProcess, RedisServer, ServerProcess, redis_server_binary
from tests.support.sockets import RECV_TIMEOUT_S, Closed, Socket, free_port

__all__ = [
    "RECV_TIMEOUT_S",
    "REPO",
    "BlockingServerProcess",
    "Closed",
    "FakeClock",
    "FakeConn",
    "RedisServer",
    "ServerProcess",
    "Socket",
    "VirtualClock",
    "free_port",
    "redis_server_binary",
]
