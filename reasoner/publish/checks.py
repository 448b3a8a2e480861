"""The checks around a push: before training, may this token write the repo; after a push, did every file land.

A read-only token should fail a run in seconds, not after hours of training; and a push counts as done only when
every local file is on the hub with the same size and hash (git's blob id, or the LFS/Xet sha256) and the hub
serves those very bytes. The hub's record of a file is what the client declared and the hub checked on arrival;
a store that corrupts the object after that (a disk, an object store, a proxy in front of it) leaves the record
right and the file wrong, so the verification reads every pushed file back, once, at the commit it checked.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

from reasoner.errors import UserError
from reasoner.hubclient.calls import api as hub_api
from reasoner.hubclient.calls import client_agent, describe_hub_error, endpoint, hub_call
from reasoner.publish.push import PushJob, hub_reachable
from reasoner.publish.xetcheck import check_xet_uploads


def git_blob_sha1(path: Path) -> str:
    """The id git (and the hub) gives a regular file."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def served_sha256(repo_id: str, name: str, commit: str) -> str:
    """The sha256 of the bytes the hub serves for ``name`` at ``commit`` (streamed, nothing written to disk)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

    url = hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint())
    digest = hashlib.sha256()
    with http_stream_backoff("GET", url, headers=build_hf_headers(user_agent=client_agent()), timeout=60,
                             follow_redirects=True) as response:
        hf_raise_for_status(response)
        for chunk in response.iter_bytes(chunk_size=1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed(repo_id: str) -> tuple[str, dict]:
    """The commit ``main`` points at and the files the hub records there."""
    client = hub_api()
    commit = client.repo_info(repo_id).sha
    files = {entry.path: entry for entry in client.list_repo_tree(repo_id, recursive=True, revision=commit)
             if hasattr(entry, "size") and entry.__class__.__name__ == "RepoFile"}
    return commit, files


def _record_problem(name: str, entry, path: Path, local_sha256: str) -> str | None:
    """How the hub's record of a file differs from the local file (None: size and hash agree)."""
    if entry.size != path.stat().st_size:
        return f"{name}: {entry.size} bytes on the hub, {path.stat().st_size} locally"
    lfs = getattr(entry, "lfs", None)
    if lfs is not None:
        remote_sha = lfs.sha256 if hasattr(lfs, "sha256") else lfs["sha256"]
        return None if remote_sha == local_sha256 else f"{name}: sha256 differs"
    return None if entry.blob_id == git_blob_sha1(path) else f"{name}: content differs"


def verify_upload(repo_id: str, folder: Path, job: PushJob) -> list[str]:
    """Compare every local file that the job uploads with the hub's record of it and with the bytes the hub
    serves for it; return the mismatches."""
    try:
        with hub_reachable():
            commit, remote = _listed(repo_id)
    except Exception as exc:  # noqa: BLE001 - an unverifiable push counts as not landed; the caller reports it
        return [f"could not list {repo_id} on the hub to verify it ({type(exc).__name__})"]
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in job.ignore_patterns):
            continue
        name = f"{job.path_in_repo}/{rel}" if job.path_in_repo else rel
        entry = remote.get(name)
        if entry is None:
            problems.append(f"{name}: missing on the hub")
            continue
        local = sha256(path)
        problem = _record_problem(name, entry, path, local)
        if problem is None:
            try:
                with hub_reachable():
                    served = served_sha256(repo_id, name, commit)
            except Exception as exc:  # noqa: BLE001 - a file that cannot be read back is not verified
                problem = f"{name}: could not be read back from the hub ({type(exc).__name__})"
            else:
                if served != local:
                    problem = f"{name}: the hub serves other bytes than were pushed (sha256 {served[:12]}, local {local[:12]})"
        if problem is not None:
            problems.append(problem)
    return problems


def _scoped_write_grant(whoami: dict, repo_id: str) -> bool:
    """Whether a fine-grained token's scopes grant ``repo.write`` on this repo or its namespace."""
    fine = ((whoami.get("auth") or {}).get("accessToken") or {}).get("fineGrained") or {}
    namespace = repo_id.split("/", 1)[0]
    for scope in fine.get("scoped") or []:
        entity = scope.get("entity") or {}
        if entity.get("name") in (repo_id, namespace) and "repo.write" in (scope.get("permissions") or []):
            return True
    return False


def preflight_push(repo_id: str, *, private: bool = False) -> None:
    """Refuse, before any training, a run whose pushes could not land: the token must be able to write ``repo_id``.

    Two checks, because hubs differ in what they reveal. First ``whoami``: a token the hub reports with role
    ``read`` can never push. Then the repo is created (``create_repo`` without ``exist_ok``, so that the hub's
    own answer is seen: huggingface_hub's ``exist_ok`` turns a 403 into success when the repo exists): a
    new repo or 409 "exists" pass, 401/403 refuse. A fine-grained token whose scopes grant ``repo.write`` on
    the repo passes even if it may not create repos in the namespace. Last, uploads that would use Xet need a
    hub that offers it (``reasoner.publish.xetcheck``).
    """
    from huggingface_hub import get_token  # huggingface_hub loads on the runs that push, not on every import

    api = hub_api()
    whoami: dict = {}
    with hub_reachable():
        if get_token():
            found = hub_call(api.whoami, repo_id, "model", None, "checking push access to")
            whoami = found if isinstance(found, dict) else {}
        role = ((whoami.get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise UserError(f"hub.push is true but the token is read-only at {endpoint()} (whoami role 'read'): set "
                            f"HF_TOKEN to a token with write access to {repo_id}, or pass --hub.push false")
        try:
            api.create_repo(repo_id, private=private, exist_ok=False)
        except Exception as exc:  # noqa: BLE001 - classified below
            status = getattr(getattr(exc, "response", None), "status_code", None)
            granted = status == 403 and role == "fineGrained" and _scoped_write_grant(whoami, repo_id)
            if status in (401, 403) and not granted:
                raise UserError(f"hub.push is true but the token may not write {repo_id} at {endpoint()} ({status}): "
                                f"set HF_TOKEN to a token with write access there, or pass --hub.push false") from None
            if status != 409 and not granted:
                friendly = describe_hub_error(exc, repo_id, "model", None, "checking push access to")
                if friendly is None:
                    raise
                raise friendly from None
        check_xet_uploads(repo_id)
