"""`python -m core.summary`: the command lives in core.reporting.summary."""

import sys

from core.reporting.summary import main

if __name__ == "__main__":
    sys.exit(main())
