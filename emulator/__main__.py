"""`python -m emulator [--host H] [--port P] [--config FILE] [--quiet]`."""

import sys

from chatload.emulator.server import main

sys.exit(main())
