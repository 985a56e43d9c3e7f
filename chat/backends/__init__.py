"""Where data lives and how events travel: the interfaces in ``base``, one module per implementation."""
