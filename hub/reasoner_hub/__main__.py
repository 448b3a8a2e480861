"""``python -m reasoner_hub serve --storage DIR ...``"""

import sys

from reasoner_hub.cli import main

sys.exit(main(sys.argv[1:]))
