"""Environment set-up that must happen before ``huggingface_hub`` is imported.

``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` once, at import time. This module is
imported by ``reasoner/__init__.py`` so that any use of the package configures the environment first; a
value the user set explicitly always wins.

Xet is the user's choice, not reasoner's: huggingface_hub uploads through Xet whenever ``hf_xet`` is
installed, and both huggingface.co and ``reasoner hub serve`` speak it, so reasoner leaves
``HF_HUB_DISABLE_XET`` alone for every endpoint. A private hub that speaks only LFS needs
``HF_HUB_DISABLE_XET=1`` in the environment of every process that uploads to it; the push preflight
(``reasoner.publish.xetcheck``) says so before a run trains.
"""

from __future__ import annotations

import os
from typing import MutableMapping


def configure_hub_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Turn telemetry off (unless the user decided otherwise); the upload protocol is left to the user."""
    env = os.environ if env is None else env
    # Telemetry calls would be requests to a hub that did not ask for them.
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
