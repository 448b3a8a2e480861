"""Tokens: anonymous reads of public repos, 401/403 for bad or read-only tokens, private repos hidden."""

from __future__ import annotations

import json
import urllib.request

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from reasoner_hub.errors import UserError
from reasoner_hub.auth import ANONYMOUS, Token, TokenBook, load_token_file, parse_token_arg
from reasoner_hub.server import HubServer

from .helpers import READ_TOKEN, TOKENS, WRITE_TOKEN, raw_request

ADMIN_TOKEN = "hf_localhub_admin_0123456789"
ADMIN = Token("ops", ADMIN_TOKEN, "admin")


@pytest.fixture
def writer(secure_hub) -> HfApi:
    return HfApi(endpoint=secure_hub.url, token=WRITE_TOKEN)


def test_public_reads_need_no_token(secure_hub, writer, tmp_path):
    writer.create_repo("org/public")
    writer.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="org/public")
    anonymous = HfApi(endpoint=secure_hub.url, token=False)
    assert "config.json" in anonymous.list_repo_files("org/public")
    path = hf_hub_download("org/public", "config.json", endpoint=secure_hub.url, cache_dir=tmp_path, token=False)
    assert open(path, "rb").read() == b"{}"


def test_writes_need_a_write_token(secure_hub, writer):
    writer.create_repo("org/guarded")
    anonymous = HfApi(endpoint=secure_hub.url, token=False)
    reader = HfApi(endpoint=secure_hub.url, token=READ_TOKEN)
    bad = HfApi(endpoint=secure_hub.url, token="hf_not_a_token_of_this_hub")
    for client, status in ((anonymous, 401), (bad, 401), (reader, 403)):
        with pytest.raises(HfHubHTTPError) as error:
            client.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="org/guarded")
        assert error.value.response.status_code == status
        with pytest.raises(HfHubHTTPError) as error:
            client.create_repo("org/other")
        assert error.value.response.status_code == status
    with pytest.raises(HfHubHTTPError) as error:
        bad.model_info("org/guarded")  # a bad token is refused even for public reads
    assert error.value.response.status_code == 401
    assert writer.list_repo_files("org/guarded") == [".gitattributes"]
    assert not writer.repo_exists("org/other")


def test_private_repos_are_invisible_without_a_token(secure_hub, writer, tmp_path):
    writer.create_repo("org/secret", private=True)
    writer.upload_file(path_or_fileobj=b"hidden", path_in_repo="s.txt", repo_id="org/secret")
    anonymous = HfApi(endpoint=secure_hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError) as error:
        anonymous.model_info("org/secret")
    assert error.value.response.status_code == 404
    assert not anonymous.repo_exists("org/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/secret", "s.txt", endpoint=secure_hub.url, cache_dir=tmp_path, token=False)
    reader = HfApi(endpoint=secure_hub.url, token=READ_TOKEN)
    assert reader.model_info("org/secret").private is True
    path = hf_hub_download("org/secret", "s.txt", endpoint=secure_hub.url, cache_dir=tmp_path, token=READ_TOKEN)
    assert open(path, "rb").read() == b"hidden"
    writer.update_repo_settings("org/secret", private=False)
    assert anonymous.model_info("org/secret").private is False


def test_whoami(secure_hub):
    me = HfApi(endpoint=secure_hub.url, token=READ_TOKEN).whoami()
    assert me["name"] == "reader" and me["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(endpoint=secure_hub.url, token="hf_wrong_wrong_wrong").whoami()


def test_lfs_upload_urls_are_signed(secure_hub, writer):
    writer.create_repo("org/lfs")
    oid, size = "a" * 64, 3
    body = json.dumps({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]})
    status, _, answer = raw_request(secure_hub.url, "POST", "/org/lfs.git/info/lfs/objects/batch", body.encode(),
                                    {"Authorization": f"Bearer {WRITE_TOKEN}"})
    assert status == 200
    href = json.loads(answer)["objects"][0]["actions"]["upload"]["href"]
    path = href[len(secure_hub.url):]
    tampered = path.replace("size=3", "size=4")
    assert raw_request(secure_hub.url, "PUT", tampered, b"abcd")[0] == 403
    assert raw_request(secure_hub.url, "PUT", path.replace("sig=", "sig=0"), b"abc")[0] == 403
    # Right URL, wrong content: refused, nothing stored.
    assert raw_request(secure_hub.url, "PUT", path, b"abc")[0] == 400
    status, _, _ = raw_request(secure_hub.url, "POST", "/org/lfs.git/info/lfs/objects/batch", body.encode(),
                               {"Authorization": f"Bearer {READ_TOKEN}"})
    assert status == 403


def test_open_hub_lets_anyone_write(folder_storage):
    with HubServer(folder_storage) as hub:
        HfApi(endpoint=hub.url, token=False).create_repo("org/open")
        assert HfApi(endpoint=hub.url, token=False).repo_exists("org/open")
    # Tokens may also be given as the CLI writes them; then the same storage is no longer open.
    with HubServer(folder_storage, tokens=[f"ci={WRITE_TOKEN}:write"]) as hub:
        with pytest.raises(HfHubHTTPError) as error:
            HfApi(endpoint=hub.url, token=False).create_repo("org/closed")
        assert error.value.response.status_code == 401
        assert HfApi(endpoint=hub.url, token=WRITE_TOKEN).whoami()["name"] == "ci"


def test_token_sources(tmp_path):
    yaml_file = tmp_path / "tokens.yaml"
    yaml_file.write_text("- {name: alice, token: hf_alice_123456, role: write}\n- {name: bob, token: hf_bob_1234567}\n")
    json_file = tmp_path / "tokens.json"
    json_file.write_text(json.dumps({"tokens": [{"name": "carol", "token": "hf_carol_12345", "role": "read"}]}))
    book = TokenBook(load_token_file(yaml_file) + load_token_file(json_file) + [parse_token_arg("dan=hf:dan:1234:write")])
    assert book.identify("Bearer hf_alice_123456").can_write
    assert book.identify("Bearer hf_bob_1234567").role == "read"
    assert book.identify("Bearer hf_carol_12345").name == "carol"
    assert book.identify("Bearer hf:dan:1234").can_write  # the role is after the last ':'
    assert book.identify(None) is ANONYMOUS
    assert "hf_alice" not in repr(load_token_file(yaml_file))
    assert parse_token_arg("ops=hf_abcdefgh:admin").principal().is_admin
    for bad in ["nonsense", "x=short:write", "x=hf_abcdefgh:owner", "=hf_abcdefgh:read"]:
        with pytest.raises(UserError):
            parse_token_arg(bad)
    bad_entries = {
        "role": "- {name: x, token: hf_abcdefgh, role: owner}",
        "orgs but no owner": "- {name: x, token: hf_abcdefgh, orgs: [team]}",
        "not a valid namespace": "- {name: x, token: hf_abcdefgh, owner: 'a/b'}",
        "role 'admin' in org": "- {name: x, token: hf_abcdefgh, owner: a, orgs: {team: admin}}",
        "list of names": "- {name: x, token: hf_abcdefgh, owner: a, orgs: team}",
    }
    for problem, entry in bad_entries.items():
        (tmp_path / "bad.yaml").write_text(entry + "\n")
        with pytest.raises(UserError, match=problem):
            load_token_file(tmp_path / "bad.yaml")
    with pytest.raises(UserError):
        load_token_file(tmp_path / "missing.yaml")
    with pytest.raises(UserError):
        TokenBook(TOKENS + TOKENS)


def test_tokens_never_reach_the_request_log(folder_storage, tmp_path):
    log = tmp_path / "requests.jsonl"
    with HubServer(folder_storage, tokens=TokenBook(TOKENS + [ADMIN]), request_log=str(log)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/logged")
        api.upload_file(path_or_fileobj=b"\x00" * 2000, path_in_repo="w.bin", repo_id="org/logged")
        with pytest.raises(HfHubHTTPError):
            HfApi(endpoint=hub.url, token=READ_TOKEN).create_repo("org/denied")
        metrics_request = urllib.request.Request(f"{hub.url}/api/_metrics",
                                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        metrics = urllib.request.urlopen(metrics_request).read().decode()
    text = log.read_text()
    assert text.count("\n") >= 5
    for secret in (WRITE_TOKEN, READ_TOKEN, ADMIN_TOKEN):
        assert secret not in text and secret not in metrics
    assert "sig=" not in text  # LFS upload URLs are logged without their query
