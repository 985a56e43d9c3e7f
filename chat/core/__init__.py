"""The rules of chat, pure: no tornado, no database driver, no Redis, no sockets.

They take events in and hand events out, so they are tested without an event
loop or a socket. ``tests/test_layers.py`` fails if a module here imports an
I/O library.
"""
