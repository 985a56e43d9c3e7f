"""Start the chat server: ``python server.py --help`` lists the options (the same as ``chat-server``)."""

import sys

from chat.server.main import main

if __name__ == "__main__":
    sys.exit(main())
