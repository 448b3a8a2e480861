"""``reasoner push``: finish an upload that a run could not complete (the command a failed push prints)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from reasoner.push import PushPolicy, push_folder


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner push", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="the local model or checkpoint folder")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the hub that HF_ENDPOINT names")
    parser.add_argument("--path-in-repo", default="", help="e.g. last-checkpoint for a checkpoint folder")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--attempts", type=int, default=None, help="default: REASONER_PUSH_ATTEMPTS, else 6")
    ns = parser.parse_args(list(argv))
    push_folder(ns.repo_id, ns.folder, path_in_repo=ns.path_in_repo, private=ns.private,
                policy=PushPolicy(attempts=ns.attempts) if ns.attempts else PushPolicy())
    print(f"pushed and verified: {ns.folder} -> {ns.repo_id}")
    return 0
