"""``python -m fastvoice.serve``: the same as ``fastvoice serve``."""

import sys

from fastvoice.serve import cli_main

sys.exit(cli_main(sys.argv[1:]))
