"""The permissions table: every role against every route, over HTTP, on a private and a public repo.

Roles: anonymous; a read token of a member of ``team``; a write token in its owner's own namespace;
a write token of someone who is not a member of ``team``; a write token of a ``team`` member; an
admin token. Each role targets a fresh repo (in ``team``, or for the owner in ``olga``), private or
public, and one request per route checks the status and that a refused request changed nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub.auth import Token, TokenBook
from reasoner_hub.commits import AddFile, git_blob_oid
from reasoner_hub.paths import repo_from_id
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .helpers import client_env, raw_request

ROLES: dict[str, tuple[Token | None, str]] = {  # role -> (token, namespace of the repos it targets)
    "anonymous": (None, "team"),
    "reader": (Token("rita-read", "hf_perm_reader_0001", "read", "rita", (("team", "write"),)), "team"),
    "owner": (Token("olga-write", "hf_perm_owner_0001", "write", "olga"), "olga"),
    "outsider": (Token("oscar-write", "hf_perm_outsider_01", "write", "oscar", (("elsewhere", "write"),)), "team"),
    "member": (Token("mia-write", "hf_perm_member_0001", "write", "mia", (("team", "write"),)), "team"),
    "admin": (Token("root-admin", "hf_perm_admin_00001", "admin", "root"), "team"),
}

# (status on a private repo, status on a public repo) per role
READ = {"anonymous": (404, 200), "reader": (200, 200), "owner": (200, 200), "outsider": (404, 200),
        "member": (200, 200), "admin": (200, 200)}
WRITE = {"anonymous": (401, 401), "reader": (403, 403), "owner": (200, 200), "outsider": (404, 403),
         "member": (200, 200), "admin": (200, 200)}
CREATE = {"anonymous": (401, 401), "reader": (403, 403), "owner": (200, 200), "outsider": (403, 403),
          "member": (200, 200), "admin": (200, 200)}
EVERYONE = {role: (200, 200) for role in ROLES}
ADMIN_ONLY = {"anonymous": (401, 401), "reader": (403, 403), "owner": (403, 403), "outsider": (403, 403),
              "member": (403, 403), "admin": (200, 200)}
SIGNED_IN = {**EVERYONE, "anonymous": (401, 401)}
GIT_READ = {**READ, "anonymous": (401, 200)}  # git asks for a password only after a 401 with a challenge

EXPECTED = {
    "info": READ, "tree": READ, "paths-info": READ, "resolve": READ, "refs": READ, "commits": READ,
    "create": CREATE, "commit": WRITE, "preupload": WRITE, "lfs-batch": WRITE, "delete": WRITE,
    "settings": WRITE, "branch": WRITE, "branch-delete": WRITE, "tag": WRITE, "tag-delete": WRITE,
    "move": WRITE, "squash": WRITE, "listing": EVERYONE, "metrics": ADMIN_ONLY, "whoami": SIGNED_IN,
    "xet-read-token": READ, "xet-write-token": WRITE,
    "git-refs": GIT_READ, "git-upload-pack": GIT_READ, "lfs-download": GIT_READ, "git-push": GIT_READ,
}
CHANGES_STATE = {"create", "commit", "delete", "settings", "branch", "branch-delete", "tag", "tag-delete", "move",
                 "squash"}
CONTENT = b'{"hidden_size": 8}'
LFS_OID = hashlib.sha256(b"weights").hexdigest()


def _request(route: str, repo_id: str, private: bool) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path, body, headers) of ``route`` against ``repo_id``."""
    org, name = repo_id.split("/")
    as_json = {"Content-Type": "application/json"}
    simple = {
        "info": ("GET", f"/api/models/{repo_id}"),
        "tree": ("GET", f"/api/models/{repo_id}/tree/main"),
        "resolve": ("GET", f"/{repo_id}/resolve/main/config.json"),
        "refs": ("GET", f"/api/models/{repo_id}/refs"),
        "commits": ("GET", f"/api/models/{repo_id}/commits/main"),
        "listing": ("GET", f"/api/models?author={org}"),
        "metrics": ("GET", "/api/_metrics"),
        "whoami": ("GET", "/api/whoami-v2"),
        "branch-delete": ("DELETE", f"/api/models/{repo_id}/branch/old"),
        "xet-read-token": ("GET", f"/api/models/{repo_id}/xet-read-token/main"),
        "xet-write-token": ("GET", f"/api/models/{repo_id}/xet-write-token/main"),
        "tag-delete": ("DELETE", f"/api/models/{repo_id}/tag/v0"),
        "git-refs": ("GET", f"/{repo_id}/info/refs?service=git-upload-pack"),
        "git-push": ("GET", f"/{repo_id}.git/info/refs?service=git-receive-pack"),
    }
    if route in simple:
        return (*simple[route], None, {})
    if route == "git-upload-pack":
        return "POST", f"/{repo_id}/git-upload-pack", b"0014command=ls-refs\n0000", {"Git-Protocol": "version=2"}
    if route == "paths-info":
        return "POST", f"/api/models/{repo_id}/paths-info/main", b"paths=config.json", {
            "Content-Type": "application/x-www-form-urlencoded"}
    if route == "commit":
        lines = [{"key": "header", "value": {"summary": "add"}},
                 {"key": "file", "value": {"path": "new.txt", "content": base64.b64encode(b"new").decode(),
                                           "encoding": "base64"}}]
        body = "\n".join(json.dumps(line) for line in lines).encode()
        return "POST", f"/api/models/{repo_id}/commit/main", body, {"Content-Type": "application/x-ndjson"}
    bodies = {
        "create": ("POST", "/api/repos/create", {"name": f"{name}-new", "organization": org, "type": "model",
                                                 "private": private}),
        "preupload": ("POST", f"/api/models/{repo_id}/preupload/main",
                      {"files": [{"path": "a.txt", "sample": base64.b64encode(b"abc").decode(), "size": 3}]}),
        "lfs-batch": ("POST", f"/{repo_id}.git/info/lfs/objects/batch",
                      {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": LFS_OID, "size": 7}]}),
        "lfs-download": ("POST", f"/{repo_id}.git/info/lfs/objects/batch",
                         {"operation": "download", "transfers": ["basic"], "objects": [{"oid": LFS_OID, "size": 7}]}),
        "delete": ("DELETE", "/api/repos/delete", {"organization": org, "name": name, "type": "model"}),
        "settings": ("PUT", f"/api/models/{repo_id}/settings", {"private": not private}),
        "branch": ("POST", f"/api/models/{repo_id}/branch/dev", {}),
        "tag": ("POST", f"/api/models/{repo_id}/tag/main", {"tag": "v1"}),
        "move": ("POST", "/api/repos/move", {"fromRepo": repo_id, "toRepo": f"{org}/{name}-moved", "type": "model"}),
        "squash": ("POST", f"/api/models/{repo_id}/super-squash/main", {"message": "squash"}),
    }
    method, path, data = bodies[route]
    return method, path, json.dumps(data).encode(), as_json


@pytest.fixture(scope="module")
def table_hub(tmp_path_factory):
    tokens = TokenBook(token for token, _ in ROLES.values() if token is not None)
    with HubServer(LocalStorage(tmp_path_factory.mktemp("permissions") / "bucket"), tokens=tokens) as server:
        yield server


def _seed(hub: HubServer, repo_id: str, private: bool) -> None:
    """A repo with config.json, a branch ``old`` and a tag ``v0``, made directly in the store."""
    store, repo = hub.store, repo_from_id("model", repo_id)
    store.create_repo(repo, private, "seed")
    sha = store.put_blob(repo, CONTENT)
    store.commit(repo, "main", [AddFile("config.json", sha, len(CONTENT), False, git_blob_oid(CONTENT))], "seed", "", "seed")
    store.create_ref(repo, "heads", "old", None)
    store.create_ref(repo, "tags", "v0", None)


def _state(hub: HubServer, repo_id: str) -> tuple:
    """Everything a route of the table may change."""
    store, repo = hub.store, repo_from_id("model", repo_id)
    meta = store.meta(repo)
    others = [store.meta(repo_from_id("model", f"{repo_id}-{suffix}")) is not None for suffix in ("new", "moved")]
    if meta is None:
        return (None, *others)
    return (meta.private, store.refs(repo, "heads"), store.refs(repo, "tags"), *others)


@pytest.mark.parametrize("visibility", ["private", "public"])
@pytest.mark.parametrize("route", sorted(EXPECTED))
@pytest.mark.parametrize("role", list(ROLES))
def test_permission_table(table_hub, role, route, visibility):
    token, space = ROLES[role]
    private = visibility == "private"
    repo_id = f"{space}/{route}-{visibility}-{role}"
    _seed(table_hub, repo_id, private)
    before = _state(table_hub, repo_id)
    method, path, body, headers = _request(route, repo_id, private)
    if token is not None:
        headers["Authorization"] = f"Bearer {token.secret}"
    status, answer_headers, answer = raw_request(table_hub.url, method, path, body, headers)
    expected = EXPECTED[route][role][0 if private else 1]
    assert status == expected, f"{role} {route} on a {visibility} repo: {status} {answer[:300]!r}"
    after = _state(table_hub, repo_id)
    if status >= 400:
        assert after == before, f"a refused {route} changed the repo"
        assert token is None or token.secret.encode() not in answer
    elif route in CHANGES_STATE:
        assert after != before, f"{route} answered {status} but changed nothing"
    if status == 404:  # the same answer as for a repo that does not exist: the name is not confirmed
        assert answer_headers.get("x-error-code") == "RepoNotFound"
        assert json.loads(answer)["error"] == f"Repository not found: {repo_id}"
    if route == "resolve" and status == 200:
        assert answer == CONTENT
    if route.startswith("git-") and status == 401:
        assert answer_headers["www-authenticate"].startswith("Basic")
    if route == "git-push" and status == 200:  # the advertisement is one error line: pushes are refused
        assert b"ERR This hub is read-only over git" in answer
    if route in ("git-refs", "git-upload-pack") and status == 200:
        assert b"refs/heads/main" in answer or b"version 2" in answer
    if route == "listing":
        listed = {item["id"] for item in json.loads(answer)}
        assert (repo_id in listed) == (READ[role][0 if private else 1] == 200)
    if route == "whoami" and status == 200:
        assert json.loads(answer)["name"] == (token.owner or token.name)


def test_whoami_names_the_user_and_orgs_and_org_roles_apply(folder_storage, tmp_path):
    mia = Token("mia-laptop", "hf_perm_mia_000001", "write", "mia", (("team", "write"), ("lab", "read")))
    ops = Token("ops", "hf_perm_ops_000001", "admin")
    with HubServer(folder_storage, tokens=TokenBook([mia, ops])) as hub:
        me = HfApi(endpoint=hub.url, token=mia.secret).whoami()
        assert me["name"] == "mia" and me["auth"]["accessToken"] == {"displayName": "mia-laptop", "role": "write"}
        assert [(org["name"], org["roleInOrg"]) for org in me["orgs"]] == [("team", "write"), ("lab", "read")]
        env = client_env(hub.url, tmp_path / "home", token=mia.secret)
        command = [sys.executable, "-m", "huggingface_hub.cli.hf", "auth", "whoami", "--format", "json"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        shown = json.loads(result.stdout)
        assert shown["user"] == "mia" and shown["orgs"] == "team,lab"
        # A read membership: lab's private repos are readable, not writable, and no repo may be created there.
        admin = HfApi(endpoint=hub.url, token=ops.secret)
        admin.create_repo("lab/notes", private=True)
        api = HfApi(endpoint=hub.url, token=mia.secret)
        assert api.model_info("lab/notes").private is True
        for write in (lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="lab/notes"),
                      lambda: api.create_repo("lab/mine")):
            with pytest.raises(HfHubHTTPError) as error:
                write()
            assert error.value.response.status_code == 403
        api.create_repo("team/mine")
        api.create_repo("mine")  # no namespace: the token owner's
        assert [m.id for m in admin.list_models()] == ["lab/notes", "mia/mine", "team/mine"]
