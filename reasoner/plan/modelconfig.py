"""A hub model's ``config.json``: the one small file the planner reads to size a model it has not downloaded.

``reasoner plan`` runs before anything is queued, on a login node, for any model: Qwen2.5-Math, DeepSeek-R1
distills, Qwen3, a private fine-tune. Its shape is in its ``config.json``, a few kilobytes, so the planner asks
the hub (``HF_ENDPOINT``, at the recipe's pinned revision) for that one file through
``huggingface_hub.hf_hub_download``, which keeps it in the hub cache: a second plan, or an offline node with the
cache, reads it without a request. A model the hub does not have is refused here, in one line, before any job
is queued; an unreachable hub is reported to the caller, which may fall back to a built-in table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasoner.errors import UserError


class HubUnreachable(Exception):
    """The hub could not be asked (offline mode, no network, hub down): not a verdict on the model."""


# (endpoint, model, revision) -> the answer: one plan weighs many layouts of one model, and an unreachable hub
# costs huggingface_hub's retries (seconds) each time it is asked, so a process asks once.
_ANSWERS: dict[tuple[str, str, str], tuple[dict[str, Any], str] | HubUnreachable] = {}


def fetch_config(model_id: str, revision: str | None) -> tuple[dict[str, Any], str]:
    """``config.json`` of ``model_id`` at ``revision`` (cache first), and where it came from; asked once per
    process (the answer, or the hub being unreachable, is remembered).

    UserError when the hub answers that the model, the revision or its ``config.json`` does not exist;
    HubUnreachable when the hub cannot be asked and the file is not cached.
    """
    from reasoner.hubclient import calls as hub

    key = (hub.endpoint(), model_id, revision or "main")
    if key not in _ANSWERS:
        try:
            _ANSWERS[key] = _ask_hub(model_id, revision)
        except HubUnreachable as exc:
            _ANSWERS[key] = exc
    answer = _ANSWERS[key]
    if isinstance(answer, HubUnreachable):
        raise HubUnreachable(str(answer))
    return answer


def _ask_hub(model_id: str, revision: str | None) -> tuple[dict[str, Any], str]:
    """The cached file, else one metadata request without retries (an unreachable hub answers at once instead of
    after huggingface_hub's backoff), then the download."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.constants import is_offline_mode

    from reasoner.hubclient import calls as hub

    try:
        try:
            path = hf_hub_download(model_id, "config.json", revision=revision or "main", local_files_only=True)
        except errors.LocalEntryNotFoundError:
            if is_offline_mode():
                raise
            get_hf_file_metadata(hf_hub_url(model_id, "config.json", revision=revision or "main"), timeout=10)
            path = hf_hub_download(model_id, "config.json", revision=revision or "main")
    except errors.LocalEntryNotFoundError as exc:  # offline, or the hub unreachable, and nothing cached
        raise HubUnreachable(f"{type(exc).__name__}") from None
    except errors.EntryNotFoundError:
        raise UserError(f"model '{model_id}' at {hub.endpoint()} has no config.json at revision "
                        f"'{revision or 'main'}': point model.id at a transformers model") from None
    except errors.HFValidationError:
        raise UserError(f"model.id '{model_id}' is neither a local folder nor a hub repo id (org/name): "
                        "fix model.id") from None
    except Exception as exc:  # noqa: BLE001 - classified below
        if hub._is_network_error(exc):  # noqa: SLF001 - the project's one network-error test
            raise HubUnreachable(type(exc).__name__) from None
        friendly = hub.describe_hub_error(exc, model_id, "model", revision, "reading config.json of")
        if friendly is None:
            raise
        raise friendly from None
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"config.json of model '{model_id}' is not JSON ({exc}); fix the model repo") from None
    return config, f"config.json from {hub.endpoint()} ({model_id}@{revision or 'main'})"
