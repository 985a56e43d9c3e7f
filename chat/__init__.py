"""A real-time chat service on Tornado.

Where things live:

- ``validation``, ``protocol``, ``model``: the wire format and its rules (pure).
- ``names``, ``rooms``, ``ratelimit``, ``idempotency``, ``sessions``: chat rules (pure).
- ``history``: the durable history store (SQLite).
- ``service``: orchestrates the rules, the store and the connections (no tornado).
- ``ws``, ``web``, ``app``: thin Tornado adapters.
- ``client``: the async Python client and its command line.
"""
