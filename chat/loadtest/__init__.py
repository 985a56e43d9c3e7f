"""A load tester for the chat server that accounts for every delivery: ``python -m chat.loadtest --help``.

Modules, one job each:

- :mod:`~chat.loadtest.options`: the command line, as a frozen ``LoadConfig``;
- :mod:`~chat.loadtest.schedule`: who connects, joins and sends what, when (pure);
- :mod:`~chat.loadtest.accounting`: the delivery ledger (pure);
- :mod:`~chat.loadtest.client`: one member: connect, join, read, send, resume (gaps are filled
  with :mod:`chat.client.cursor`, the client's own per-room cursor);
- :mod:`~chat.loadtest.wire`: message texts, targets and failure names;
- :mod:`~chat.loadtest.connection`: the ``websockets`` Sans-I/O protocol under an asyncio Protocol;
- :mod:`~chat.loadtest.worker`: one load process's share of the members;
- :mod:`~chat.loadtest.procs`: workers in child processes (``--procs``);
- :mod:`~chat.loadtest.run`: the coordinator of a run; :mod:`~chat.loadtest.monitor` its live view;
- :mod:`~chat.loadtest.metrics`: the server's figures (``/metrics``, ``/proc``);
- :mod:`~chat.loadtest.spawn`: ``--spawn-server``;
- :mod:`~chat.loadtest.report`, :mod:`~chat.loadtest.plot`, :mod:`~chat.loadtest.slo`: the results;
- :mod:`~chat.loadtest.cli`: ``main()``.
"""
