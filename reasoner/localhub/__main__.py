"""``python -m reasoner.localhub serve --storage DIR ...``"""

import sys

from reasoner.localhub.cli import main

sys.exit(main(sys.argv[1:]))
