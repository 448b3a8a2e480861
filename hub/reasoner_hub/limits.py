"""Limits on what one request may make the hub read, hold or compute, and checks of request fields.

Every limit is far above what huggingface_hub, datasets or transformers send (they are sized from
the Hub's own: 1,000 paths per ``paths-info`` call, 10 MB regular files), so only a broken or
hostile client meets them; it gets 400 or 413 with one line saying which limit and what to do.
The field checks turn a wrongly typed JSON field into such a 400 instead of an internal error.
"""

from __future__ import annotations

import json

from reasoner_hub.errors import HubError, bad_request

MiB = 1024 * 1024

MAX_JSON_BODY = 8 * MiB  # create, preupload, LFS batch, paths-info, settings, branches, tags
MAX_CARD_BODY = 4 * MiB  # validate-yaml: the whole model card
MAX_YAML_BYTES = 128 * 1024  # the card's metadata block (parsing YAML is slow: ~0.3 s per 100 KB)
MAX_PATHS_PER_CALL = 1000  # paths-info, as on the Hub
MAX_REGULAR_FILE = 16 * MiB  # a non-LFS file inside a commit body (the Hub's limit is 10 MB)
MAX_COMMIT_LINE = (MAX_REGULAR_FILE * 4) // 3 + 64 * 1024  # one x-ndjson line: base64 + JSON around it
MAX_COMMIT_BODY = 2048 * MiB  # a whole commit body
MAX_JSON_DEPTH = 64  # nested lists and objects in one JSON body (huggingface_hub sends 4 at most)


def parse_json(raw: bytes, what: str = "Request body") -> object:
    """A request's JSON: 400 when it is not JSON or nests deeper than MAX_JSON_DEPTH.

    Without the depth limit a body of a few thousand brackets (a few KB) makes the parser, or any later
    code that walks the value, exhaust the interpreter's recursion limit: an internal error, not a 400.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_request(f"{what} is not valid JSON") from None
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        raise bad_request(f"{what} nests lists and objects deeper than {MAX_JSON_DEPTH} levels: send flatter JSON")
    return value


def _depth(value: object) -> int:
    """How deeply lists and objects nest in ``value``, walked without recursion; stops past the limit."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def too_large(what: str, limit: int, advice: str) -> HubError:
    return HubError(413, f"{what} is larger than {_size(limit)}: {advice}")


def _size(count: int) -> str:
    return f"{count // MiB} MiB" if count >= MiB and count % MiB == 0 else f"{count} bytes"


def mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object, not {_kind(value)}")
    return value


def text(data: dict, name: str, what: str, default: str | None = None) -> str | None:
    """A string field (None or ``default`` when absent); any other JSON type is a 400."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"{what}: {name} must be a string, not {_kind(value)}")
    return value


def integer(data: dict, name: str, what: str, default: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise bad_request(f"{what}: {name} must be an integer, not {_kind(value)}")
    if value < 0:
        raise bad_request(f"{what}: {name} must not be negative")
    return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
