"""The Redis client: a pool of connections per process, and no retries by redis-py."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Connections per process. Commands of many callers share pipelines (Batch,
# the append and presence queues), so a process needs only a few at a time,
# whatever the number of sockets; pub/sub holds one more.
POOL_SIZE = 32
# How long a command waits for a free pooled connection before it fails. Each
# holder keeps its connection for one round trip, which fails after
# SOCKET_TIMEOUT_S if Redis stops answering: a wait this long means Redis is
# gone, never merely that the pool is busy.
POOL_WAIT_S = 60.0
# A connection not made, or a reply not read, within these has failed: Redis is
# not answering. They are timers on the event loop, so they also run while a
# saturated process is busy with other work (a storm of handshakes on a shared
# core can hold the loop for seconds): tighter ones turn a busy process into an
# apparent Redis outage, refusing joins and closing new sockets with 1013.
SOCKET_CONNECT_TIMEOUT_S = 10.0
SOCKET_TIMEOUT_S = 10.0


def connect(url: str, *, pool_size: int = POOL_SIZE, pool_wait: float = POOL_WAIT_S) -> aioredis.Redis:
    """A client for ``url``. Commands are never retried by redis-py: a retried
    append could store a message twice; we answer ``unavailable`` instead and
    the client retries with its ref, which the append script makes safe.

    A command that finds every pooled connection busy waits for one (up to
    ``pool_wait``): redis-py's BlockingConnectionPool raises ConnectionError
    "No connection available." only once that wait is over.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_wait,
        decode_responses=True,
        socket_connect_timeout=SOCKET_CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client
