"""History, fan-out and presence on Redis, shared by many processes on many machines.

- :mod:`~chat.backends.redis.keys`: every key and channel name.
- :mod:`~chat.backends.redis.scripts`: every Lua script, handed its keys as ``KEYS``.
- :mod:`~chat.backends.redis.pipeline`: commands of many callers in one round trip.
- :mod:`~chat.backends.redis.connection`: :func:`connect`, the client and its pool.
- :mod:`~chat.backends.redis.store`: :class:`RedisHistory`, the history store.
- :mod:`~chat.backends.redis.broker`: :class:`RedisBroker`, made of
  :mod:`~chat.backends.redis.subscription` (fan-out and gap filling),
  :mod:`~chat.backends.redis.presence` (presence and reaping) and
  :mod:`~chat.backends.redis.claims` (name claims), with
  :mod:`~chat.backends.redis.health` telling whether Redis answers.

docs/scaling.md tells the whole story.
"""
