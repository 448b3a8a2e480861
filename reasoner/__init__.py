"""reasoner: GRPO reasoning training for small open LLMs, against any Hugging-Face-compatible hub."""

from reasoner.hubclient.env import configure_hub_environment as _configure_hub_environment

# Before anything imports huggingface_hub: it reads HF_ENDPOINT / HF_HUB_DISABLE_XET at import time.
_configure_hub_environment()

__version__ = "0.1.0"
