"""Path lookups in a commit's file table in time proportional to what is asked, not to the repo.

A commit's paths, sorted once, answer "is this a folder?" and "what is under it?" by binary
search: ``paths-info`` with P paths on a repo of F files costs O(P log F + what it returns)
instead of O(P x F). The sorted index is cached per file table (tables belong to immutable
commits, themselves cached by the store).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping
from urllib.parse import parse_qs

from reasoner_hub import errors
from reasoner_hub.limits import MAX_PATHS_PER_CALL, parse_json

_CACHE_SIZE = 64


class PathIndex:
    def __init__(self, files: Mapping[str, object]) -> None:
        self.paths = sorted(files)

    def _span(self, folder: str) -> tuple[int, int]:
        # Every path under "a/b" sorts in ["a/b/", "a/b0"): '0' is the character after '/'.
        return bisect_left(self.paths, folder + "/"), bisect_left(self.paths, folder + "0")

    def under(self, folder: str) -> list[str]:
        """Every file path inside ``folder`` (recursively), sorted."""
        lo, hi = self._span(folder)
        return self.paths[lo:hi]

    def is_folder(self, folder: str) -> bool:
        lo, hi = self._span(folder)
        return lo < hi


_cache: OrderedDict[int, tuple[Mapping, PathIndex]] = OrderedDict()
_cache_lock = threading.Lock()


def path_index(files: Mapping[str, object]) -> PathIndex:
    """The index of a commit's file table, built once per table while it stays in use."""
    key = id(files)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is files:
            _cache.move_to_end(key)
            return hit[1]
    index = PathIndex(files)
    with _cache_lock:
        _cache[key] = (files, index)  # holding the table keeps its id from being reused
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def paths_request(raw: bytes, content_type: str) -> tuple[list[str], bool]:
    """The ``paths`` and ``expand`` of a paths-info body (form-encoded, as huggingface_hub sends it, or JSON)."""
    if "json" in content_type.lower():
        data = parse_json(raw or b"{}")
        if not isinstance(data, dict):
            raise errors.bad_request("paths-info needs a JSON object with paths")
        paths, expand = data.get("paths", []), str(data.get("expand", "")).lower() in ("1", "true")
    else:
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        paths, expand = form.get("paths", []), (form.get("expand", [""])[0]).lower() in ("1", "true")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise errors.bad_request("paths-info: paths must be a list of strings")
    if len(paths) > MAX_PATHS_PER_CALL:
        raise errors.bad_request(
            f"paths-info takes at most {MAX_PATHS_PER_CALL} paths per call, not {len(paths)}: split the list"
        )
    return paths, expand
