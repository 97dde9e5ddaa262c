"""`python -m core.prepare` (ByteMLPerf's command line): see core.assets.prepare."""

import sys

from core.assets.prepare import main

if __name__ == "__main__":
    sys.exit(main())
