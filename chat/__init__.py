"""A real-time chat service on Tornado.

Where things live (docs/architecture.md draws the layers and which may import which):

- ``core``: the rules of chat, pure: the wire protocol, validation, names,
  rooms, rate limits, idempotency, the sequencer, outboxes and the service.
- ``backends``: where data lives and how events travel: the interfaces in
  ``base``, SQLite and the in-process broker, and ``redis``.
- ``server``: the Tornado adapter: the app, WebSocket and HTTP handlers,
  options, metrics, serving one process or supervising many.
- ``client``: the async Python client and its command line.
- ``loadtest``: the load tester, which accounts for every delivery.
"""
