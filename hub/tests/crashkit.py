"""What the crash tests need: a no-retry wire client, a look into the store, and a ledger of answers.

The writes go over plain HTTP with one attempt each (huggingface_hub retries a dead server for
~15 s per call, which would only slow the test down); the checks after a restart read through the
real huggingface_hub client.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import HfApi

from reasoner_hub.commits import git_blob_oid


class ServerGone(Exception):
    """No answer: the server died before or while handling the request."""


class WireClient:
    """One HTTP request per call, no retry; raises ServerGone when there is no answer."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.token = parts.hostname, parts.port, token

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                token: bool = True) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = {"Authorization": f"Bearer {self.token}"} if token else {}
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException) as error:
            raise ServerGone(str(error)) from None
        finally:
            connection.close()

    def create(self, repo_id: str, private: bool) -> int:
        org, name = repo_id.split("/")
        body = json.dumps({"organization": org, "name": name, "private": private}).encode()
        return self.request("POST", "/api/repos/create", body, {"Content-Type": "application/json"})[0]

    def delete(self, repo_id: str) -> int:
        org, name = repo_id.split("/")
        body = json.dumps({"organization": org, "name": name}).encode()
        return self.request("DELETE", "/api/repos/delete", body, {"Content-Type": "application/json"})[0]

    def commit(self, repo_id: str, files: dict[str, bytes], deleted: list[str] = (), lfs: dict[str, bytes] = (),
               revision: str = "main") -> tuple[int, str | None]:
        """Regular files inline, LFS files uploaded first (batch + signed PUT), then one commit."""
        lfs = dict(lfs or {})
        for content in lfs.values():
            status = self.upload_lfs(repo_id, content)
            if status != 200:
                return status, None
        lines = [{"key": "header", "value": {"summary": "crash test", "description": ""}}]
        lines += [{"key": "file", "value": {"path": p, "content": base64.b64encode(c).decode(), "encoding": "base64"}}
                  for p, c in files.items()]
        lines += [{"key": "lfsFile", "value": {"path": p, "algo": "sha256", "oid": hashlib.sha256(c).hexdigest(),
                                               "size": len(c)}} for p, c in lfs.items()]
        lines += [{"key": "deletedFile", "value": {"path": p}} for p in deleted]
        body = "\n".join(json.dumps(line) for line in lines).encode()
        status, answer = self.request("POST", f"/api/models/{repo_id}/commit/{revision}", body,
                                      {"Content-Type": "application/x-ndjson"})
        return status, json.loads(answer).get("commitOid") if status == 200 else None

    def lfs_href(self, repo_id: str, oid: str, size: int) -> tuple[int, str | None]:
        body = json.dumps({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]})
        status, answer = self.request("POST", f"/{repo_id}.git/info/lfs/objects/batch", body.encode(),
                                      {"Content-Type": "application/vnd.git-lfs+json"})
        if status != 200:
            return status, None
        actions = json.loads(answer)["objects"][0].get("actions")
        return 200, actions["upload"]["href"] if actions else ""

    def upload_lfs(self, repo_id: str, content: bytes) -> int:
        status, href = self.lfs_href(repo_id, hashlib.sha256(content).hexdigest(), len(content))
        if status != 200 or not href:
            return status
        path = href[href.index("/_lfs/"):]
        return self.request("PUT", path, content, token=False)[0]

    def branch(self, repo_id: str, name: str, delete: bool = False) -> int:
        method = "DELETE" if delete else "POST"
        return self.request(method, f"/api/models/{repo_id}/branch/{name}", b"{}" if not delete else None,
                            {"Content-Type": "application/json"})[0]


class StoreLook:
    """Read-only look at what is really in the store: a folder, or a prefix of an S3 bucket."""

    def __init__(self, folder: Path | None = None, s3=None, prefix: str = "") -> None:
        self.folder, self.s3, self.prefix = folder, s3, prefix

    def keys(self, prefix: str) -> list[str]:
        if self.folder is not None:
            base = self.folder / prefix
            if not base.is_dir():
                return []
            return sorted(str(p.relative_to(self.folder)) for p in base.rglob("*") if p.is_file())
        client = self.s3.client()
        out, token = [], None
        while True:
            kwargs = {"ContinuationToken": token} if token else {}
            page = client.list_objects_v2(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/{prefix}", **kwargs)
            out += [item["Key"][len(self.prefix) + 1 :] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page["NextContinuationToken"]

    def read(self, key: str) -> bytes:
        if self.folder is not None:
            return (self.folder / key).read_bytes()
        return self.s3.client().get_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")["Body"].read()

    def unfinished_uploads(self) -> list[str]:
        if self.folder is not None:
            return []
        answer = self.s3.client().list_multipart_uploads(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/")
        return [upload["Key"] for upload in answer.get("Uploads", []) or []]

    def plain_view(self, repo_id: str) -> dict[str, bytes]:
        base = f"models/{repo_id}/"
        return {key[len(base) :]: self.read(key) for key in self.keys(base) if not key.startswith(base + ".hub/")}


def head_files(api: HfApi, repo_id: str, revision: str = "main") -> dict[str, str]:
    """path -> content id (sha256 for LFS files, git oid for regular ones), as the hub lists the head."""
    out = {}
    for item in api.list_repo_tree(repo_id, revision=revision, recursive=True):
        if hasattr(item, "blob_id"):
            out[item.path] = item.lfs.sha256 if item.lfs else item.blob_id
    return out


def content_id(path: str, data: bytes, head: dict[str, str]) -> str:
    """The id ``head_files`` gives ``data`` at ``path`` (LFS files by sha256)."""
    sha = hashlib.sha256(data).hexdigest()
    return sha if head.get(path) == sha else git_blob_oid(data)


@dataclass
class Ledger:
    """Every write sent and what the server answered: 'ok', 'refused' (an HTTP error) or 'unknown'."""

    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (what, repo, outcome)
    keep_versions: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # acknowledged head states
    keep_pending: dict[str, bytes] | None = None  # a commit sent whose answer never came

    def note(self, what: str, repo: str, outcome: str) -> None:
        self.outcomes.append((what, repo, outcome))

    def answered(self, what: str, repo: str) -> list[str]:
        return [o for w, r, o in self.outcomes if w == what and r == repo]
