"""`python -m chatload` is the `chatload` command."""

import sys

from chatload.harness.cli.main import main

sys.exit(main())
