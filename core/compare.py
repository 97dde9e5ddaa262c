"""`python -m core.compare`: the command lives in core.reporting.compare."""

import sys

from core.reporting.compare import main

if __name__ == "__main__":
    sys.exit(main())
