"""The ``chat-server`` command (also ``python server.py``): parse the options, log, serve."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from chat.backends.base import SchemaTooNew
from chat.server.options import parse_settings
from chat.server.serve import refuse, serve
from chat.server.supervise import supervise


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s"
        + ("[%(process)d]" if settings.workers > 1 else "")
        + ": %(message)s",
    )
    if settings.workers > 1:
        return supervise(settings)  # its workers refuse a database too new themselves
    try:
        asyncio.run(serve(settings))
    except SchemaTooNew as exc:
        return refuse(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
