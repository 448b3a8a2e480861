"""Model, dataset and space cards: the YAML front matter of ``README.md`` as ``cardData`` and ``tags``.

huggingface_hub turns ``cardData`` into ``ModelCardData``/``DatasetCardData`` (``info.card_data``)
and reads ``tags`` as is, so repo info and listings carry both. Tags are derived from the card the
way the Hub derives them (its ``tags`` plus ``license:X``, ``dataset:X``, ``base_model:X``, language
codes, the library and pipeline for models; ``task_categories:X``, ``language:X``, ... for data
sets); tags the Hub infers from file contents (``safetensors``, ``region:us``) are not added.

A card is parsed once per README content (cached by its sha256) and only its first
``MAX_CARD_BYTES``; YAML aliases are refused, so a small card cannot expand into a huge answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict

import yaml

from reasoner_hub.commits import Commit
from reasoner_hub.paths import Repo
from reasoner_hub.repos import RepoStore
from reasoner_hub.storage import NotFound

README = "README.md"
MAX_CARD_BYTES = 256 * 1024
MAX_NODES = 20_000
_FRONT_MATTER = re.compile(r"\A\ufeff?\s*---[ \t]*\r?\n(.*?)^---[ \t]*\r?$", re.S | re.M)
_LoaderClass = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DATASET_TAG_KEYS = (
    "task_categories", "task_ids", "language", "license", "size_categories", "multilinguality",
    "annotations_creators", "language_creators", "source_datasets",
)


def parse_front_matter(text: str) -> dict | None:
    """The card's metadata mapping, or None when there is none or it is not a plain YAML mapping."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None
    try:
        data = yaml.load(match.group(1), Loader=_LoaderClass)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return None
    if data is None:
        return {}
    if not isinstance(data, dict) or not _plain_tree(data):
        return None
    return json.loads(json.dumps(data, default=str))  # dates and other YAML scalars become JSON


def _plain_tree(root: object) -> bool:
    """No shared nodes (YAML aliases) and at most MAX_NODES nodes; keys are strings."""
    seen: set[int] = set()
    stack = [root]
    count = 0
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            return False
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                return False
            seen.add(id(node))
            if isinstance(node, dict):
                if not all(isinstance(key, str) for key in node):
                    return False
                stack.extend(node.values())
            else:
                stack.extend(node)
    return True


def _as_list(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items if isinstance(item, (str, int, float)) and not isinstance(item, bool)]


def card_tags(repo_type: str, card: dict) -> list[str]:
    """The tags the Hub lists for a repo with this card metadata, without duplicates."""
    tags: list[str] = []
    if repo_type == "model":
        tags += _as_list(card.get("library_name"))
        tags += _as_list(card.get("tags"))
        tags += _as_list(card.get("pipeline_tag"))
        tags += [f"dataset:{name}" for name in _as_list(card.get("datasets"))]
        tags += [f"base_model:{name}" for name in _as_list(card.get("base_model"))]
        tags += _as_list(card.get("language"))
        tags += [f"license:{name}" for name in _as_list(card.get("license"))]
    elif repo_type == "dataset":
        tags += _as_list(card.get("tags"))
        for key in DATASET_TAG_KEYS:
            tags += [f"{key}:{value}" for value in _as_list(card.get(key))]
    else:
        tags += _as_list(card.get("tags"))
        tags += [f"license:{name}" for name in _as_list(card.get("license"))]
    return list(dict.fromkeys(tags))


def card_fields(repo_type: str, card: dict | None) -> dict:
    """The repo-info fields a card contributes: ``cardData`` (when there is one), ``tags``, and more."""
    if not card:
        return {"tags": []}
    out: dict = {"cardData": card, "tags": card_tags(repo_type, card)}
    if repo_type == "model":
        for key in ("pipeline_tag", "library_name"):
            if isinstance(card.get(key), str):
                out[key] = card[key]
    elif repo_type == "space" and isinstance(card.get("sdk"), str):
        out["sdk"] = card["sdk"]
    return out


class CardReader:
    """The card fields of a commit's README.md, cached by the README's sha256."""

    def __init__(self, store: RepoStore, cache_size: int = 1024) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def fields(self, repo: Repo, commit: Commit) -> dict:
        entry = commit.files.get(README)
        if entry is None or entry.size == 0:
            return card_fields(repo.type, None)
        key = (repo.type, entry.sha256)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        fields = card_fields(repo.type, self._read(repo, entry.sha256, entry.size))
        with self._lock:
            self._cache[key] = fields
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return fields

    def _read(self, repo: Repo, sha256: str, size: int) -> dict | None:
        try:
            head = b"".join(self.store.open_blob(repo, sha256, 0, min(size, MAX_CARD_BYTES) - 1))
        except NotFound:
            return None
        return parse_front_matter(head.decode("utf-8", "replace"))
