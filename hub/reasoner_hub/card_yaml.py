"""``POST /api/validate-yaml``: is the metadata block of a model or dataset card valid YAML?

huggingface_hub sends the whole card (``{"content": ..., "repoType": ...}``) before it pushes a
README. The card is capped at ``MAX_CARD_BODY`` and its metadata block at ``MAX_YAML_BYTES``,
and the block is parsed with libyaml's safe loader when present: a hostile card cannot keep a
server thread busy for long.
"""

from __future__ import annotations

import re

import yaml

from reasoner_hub import errors
from reasoner_hub.limits import MAX_YAML_BYTES

_OPENING = re.compile(r"^---[ \t]*\r?\n")
_CLOSING = re.compile(r"\r?\n---[ \t]*(\r?\n|$)")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def metadata_errors(data: object) -> list[str]:
    """Problems with the card's metadata, for the answer's ``errors`` (empty when it is fine)."""
    if not isinstance(data, dict):
        raise errors.bad_request("validate-yaml needs a JSON object with content")
    content = data.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise errors.bad_request("validate-yaml: content must be a string")
    opening = _OPENING.match(content)
    if not opening:
        return []  # no metadata block: nothing to check
    closing = _CLOSING.search(content, opening.end() - 1, opening.end() + MAX_YAML_BYTES + 2)
    if closing is None:
        if len(content) - opening.end() > MAX_YAML_BYTES:
            return [f"The metadata block is larger than {MAX_YAML_BYTES // 1024} KiB (or has no closing ---): "
                    "shorten it"]
        return []  # an unterminated block is no metadata, as on the Hub
    block = content[opening.end() : closing.start()]
    try:
        meta = yaml.load(block, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        return [f"Invalid YAML: {' '.join(str(error).split())}"]
    if meta is not None and not isinstance(meta, dict):
        return ["The metadata must be a YAML mapping"]
    return []
