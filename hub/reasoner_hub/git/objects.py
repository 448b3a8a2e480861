"""Git objects as git itself hashes them: blobs, trees and commits, and their ids.

A repo's files map to git objects the way huggingface.co stores them: a regular file is a blob of
its bytes, an LFS (or Xet) file is a blob of its LFS pointer, so each file's ``oid`` in a manifest
is already the id of its blob. Trees are built from those ids alone (every file has mode
``100644``), which is what lets a commit's git id be computed without reading any file.

The commit object written here is a format: changing any byte of it (the identity, the time, the
message layout) changes the git ids of every commit synthesised for repos stored before commits
had git ids, and so the parents named by later commits. Never change it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

FILE_MODE = b"100644"
TREE_MODE = b"40000"
EMAIL_DOMAIN = "users.noreply.localhub"


def object_id(kind: str, body: bytes) -> str:
    """The git id (sha1) of an object of ``kind`` (blob, tree, commit) with this content."""
    return hashlib.sha1(b"%s %d\0" % (kind.encode(), len(body)) + body).hexdigest()


def build_trees(files: Mapping[str, str], folders: dict[str, str] | None = None) -> tuple[str, dict[str, bytes]]:
    """The root tree id and every tree object (id -> body) of files given as ``path -> blob id``;
    ``folders``, when given, gets the tree id of every folder path (the root is ``""``)."""
    root: dict = {}
    for path, oid in files.items():
        node = root
        *parts, name = path.split("/")
        for folder in parts:
            node = node.setdefault(folder, {})
        node[name] = oid
    trees: dict[str, bytes] = {}
    return _write_tree(root, trees, folders, ""), trees


def _write_tree(node: dict, trees: dict[str, bytes], folders: dict[str, str] | None, path: str) -> str:
    entries = []
    for name, value in node.items():
        raw = name.encode()
        if isinstance(value, dict):
            # git orders a folder as if its name ended with "/"
            subtree = _write_tree(value, trees, folders, f"{path}/{name}" if path else name)
            entries.append((raw + b"/", TREE_MODE, raw, bytes.fromhex(subtree)))
        else:
            entries.append((raw, FILE_MODE, raw, bytes.fromhex(value)))
    entries.sort(key=lambda entry: entry[0])
    body = b"".join(mode + b" " + raw + b"\0" + digest for _, mode, raw, digest in entries)
    tree_id = object_id("tree", body)
    trees[tree_id] = body
    if folders is not None:
        folders[path] = tree_id
    return tree_id


def tree_entries(body: bytes) -> list[tuple[bytes, bytes, str]]:
    """``(mode, name, id)`` of every entry of a tree object."""
    out, position = [], 0
    while position < len(body):
        space = body.index(b" ", position)
        nul = body.index(b"\0", space)
        out.append((body[position:space], body[space + 1 : nul], body[nul + 1 : nul + 21].hex()))
        position = nul + 21
    return out


def identity(name: str) -> str:
    """``name <email>`` for a commit's author and committer (characters git forbids there removed)."""
    clean = "".join(ch for ch in name if ch not in "<>\n\r\0").strip() or "unknown"
    user = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in clean)
    return f"{clean} <{user}@{EMAIL_DOMAIN}>"


def git_time(date: str) -> int:
    """Unix seconds of a manifest date (``2024-05-01T12:00:00.123Z``); 0 when it cannot be read."""
    try:
        parsed = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        try:
            parsed = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return 0
    return int(parsed.replace(tzinfo=timezone.utc).timestamp())


def commit_message(title: str, description: str) -> str:
    """The commit message: the title, then the description after a blank line."""
    text = title + ("\n\n" + description if description else "")
    return text.replace("\0", "") + "\n"


def commit_object(tree: str, parents: Sequence[str], author: str, date: str, title: str, description: str) -> bytes:
    """The body of the git commit object (author and committer are the same, in UTC)."""
    who = f"{identity(author)} {git_time(date)} +0000"
    lines = [f"tree {tree}", *(f"parent {parent}" for parent in parents), f"author {who}", f"committer {who}"]
    return ("\n".join(lines) + "\n\n" + commit_message(title, description)).encode()
