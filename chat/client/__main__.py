import sys

from chat.client.client import main

sys.exit(main())
