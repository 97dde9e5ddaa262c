"""`python -m core.sweep` (ByteMLPerf's command line): see core.fleet.sweep."""

import sys

from core.fleet.sweep import main

if __name__ == "__main__":
    sys.exit(main())
