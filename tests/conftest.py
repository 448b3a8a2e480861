"""Settings every test process shares.

All hubs in the tests are local (``reasoner.localhub``), which speak LFS, not Xet; ``huggingface_hub`` reads this
variable once, at import time, so it is set before any test module imports it.
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
