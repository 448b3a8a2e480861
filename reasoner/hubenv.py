"""Environment set-up that must happen before ``huggingface_hub`` is imported.

``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` once, at import time. A private hub
(an on-premises object-store hub, or ``reasoner hub serve``) speaks the classic LFS protocol, not Xet, so
uploads must not try Xet there. This module is imported by ``reasoner/__init__.py`` so that any use of the
package configures the environment first; a value the user set explicitly always wins.
"""

from __future__ import annotations

import os
from typing import MutableMapping

PUBLIC_HUB_HOSTS = ("huggingface.co", "hf.co")


def is_public_hub(endpoint: str) -> bool:
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return any(host == h or host.endswith("." + h) for h in PUBLIC_HUB_HOSTS)


def configure_hub_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Disable Xet for any endpoint but the public hub, unless the user decided otherwise."""
    env = os.environ if env is None else env
    endpoint = env.get("HF_ENDPOINT", "").strip()
    if endpoint and not is_public_hub(endpoint):
        env.setdefault("HF_HUB_DISABLE_XET", "1")
    # Telemetry calls would be requests to a hub that did not ask for them.
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
