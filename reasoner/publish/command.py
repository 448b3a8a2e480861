"""``reasoner push``: finish an upload that a run could not complete (the command a failed push prints)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from reasoner.errors import UserError
from reasoner.publish.push import HubPusher, PushJob, PushPolicy, final_job, finish_command, hub_reachable
from reasoner.publish.checks import verify_upload
from reasoner.publish.xetcheck import check_xet_uploads


def push_folder(repo_id: str, folder: Path, *, path_in_repo: str = "", private: bool = False,
                policy: PushPolicy | None = None) -> None:
    """``reasoner push``: upload a folder with retries and verify it; UserError if it cannot land."""
    if not folder.is_dir():
        raise UserError(f"nothing to push: {folder} is not a folder")
    with hub_reachable():
        check_xet_uploads(repo_id)
    job = final_job(folder) if not path_in_repo else PushJob(folder, path_in_repo, f"upload {folder.name}", delete_patterns=["*"])
    pusher = HubPusher(repo_id, private=private, policy=policy, in_child=False)
    if not pusher.push_now(job):
        raise UserError(f"push of {folder} to {repo_id} failed; everything is still on disk: run '{finish_command(repo_id, job)}' when the hub is back")
    problems = verify_upload(repo_id, folder, job)
    if problems:
        raise UserError(f"push of {folder} to {repo_id} did not verify ({problems[0]}; {len(problems)} problem(s)): run '{finish_command(repo_id, job)}' again")


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
