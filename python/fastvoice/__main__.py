import sys

from fastvoice.cli import main

sys.exit(main())
