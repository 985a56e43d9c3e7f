"""``python -m chat.loadtest``."""

import sys

from chat.loadtest.cli import main

sys.exit(main())
