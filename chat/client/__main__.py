import sys

from chat.client.cli import main

sys.exit(main())
