"""Pull-through mirroring: one of our hubs serves as the upstream of another."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from reasoner_hub.auth import TokenBook
from reasoner_hub.cli import main
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .helpers import TOKENS, WRITE_TOKEN


@pytest.fixture
def upstream(tmp_path):
    with HubServer(LocalStorage(tmp_path / "upstream"), tokens=TokenBook(TOKENS)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/base-model")
        api.upload_file(path_or_fileobj=b'{"hidden_size": 32}', path_in_repo="config.json", repo_id="org/base-model")
        api.upload_file(path_or_fileobj=os.urandom(50_000), path_in_repo="model.safetensors", repo_id="org/base-model")
        api.create_repo("org/rows", repo_type="dataset")
        api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/train.csv", repo_id="org/rows",
                        repo_type="dataset")
        api.create_repo("org/private-one", private=True)
        yield hub


def _downloads(hub: HubServer) -> int:
    return hub.metrics.snapshot()["by_kind"].get("download", {}).get("requests", 0)


def test_a_missing_repo_is_mirrored_once_then_served_locally(upstream, storage, tmp_path):
    upstream_api = HfApi(endpoint=upstream.url, token=False)
    with HubServer(storage, upstream=upstream.url) as mirror:
        first = Path(snapshot_download("org/base-model", endpoint=mirror.url, cache_dir=tmp_path / "a", token=False))
        assert (first / "config.json").read_bytes() == b'{"hidden_size": 32}'
        assert first.name == upstream_api.model_info("org/base-model").sha  # the upstream commit id is kept
        assert mirror.upstream.mirrored == ["models/org/base-model"]
        fetched = _downloads(upstream)
        assert fetched >= 3  # every file of main came from the upstream, once

        again = hf_hub_download("org/base-model", "model.safetensors", endpoint=mirror.url,
                                cache_dir=tmp_path / "b", token=False)
        assert Path(again).read_bytes() == (first / "model.safetensors").read_bytes()
        assert _downloads(upstream) == fetched  # served from the mirror's own storage now
        mine = HfApi(endpoint=mirror.url, token=False).model_info("org/base-model", files_metadata=True)
        theirs = upstream_api.model_info("org/base-model", files_metadata=True)
        assert {(s.rfilename, s.blob_id, s.size) for s in mine.siblings} == {
            (s.rfilename, s.blob_id, s.size) for s in theirs.siblings
        }
        assert storage.get("models/org/base-model/config.json") == b'{"hidden_size": 32}'

        data = hf_hub_download("org/rows", "data/train.csv", repo_type="dataset", endpoint=mirror.url,
                               cache_dir=tmp_path / "c", token=False)
        assert Path(data).read_bytes() == b"a,b\n1,2\n"
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=mirror.url, token=False).model_info("org/nowhere")
        with pytest.raises(RepositoryNotFoundError):  # private upstream repos stay invisible
            HfApi(endpoint=mirror.url, token=False).model_info("org/private-one")


def test_mirrored_repos_outlive_the_upstream(upstream, folder_storage, tmp_path):
    with HubServer(folder_storage, upstream=upstream.url) as mirror:
        hf_hub_download("org/base-model", "config.json", endpoint=mirror.url, cache_dir=tmp_path / "a", token=False)
        upstream.stop()
        path = hf_hub_download("org/base-model", "config.json", endpoint=mirror.url, cache_dir=tmp_path / "b",
                               token=False, force_download=True)
        assert Path(path).read_bytes() == b'{"hidden_size": 32}'
        with pytest.raises(HfHubHTTPError) as error:
            HfApi(endpoint=mirror.url, token=False).model_info("org/never-seen")
        assert error.value.response.status_code == 502
        assert "unreachable" in str(error.value)


def _revision_setup(upstream: HubServer) -> dict[str, str]:
    """On the upstream: a tag v1 at main's head, then a branch dev with one more file; the ids of each."""
    api = HfApi(endpoint=upstream.url, token=WRITE_TOKEN)
    first = api.model_info("org/base-model").sha
    api.create_tag("org/base-model", tag="v1")
    api.create_branch("org/base-model", branch="dev")
    dev = api.upload_file(path_or_fileobj=b"dev notes\n", path_in_repo="NOTES.md", repo_id="org/base-model",
                          revision="dev").oid
    return {"first": first, "dev": dev}


def test_revisions_the_mirror_lacks_are_fetched_with_their_upstream_ids(upstream, storage, tmp_path):
    with HubServer(storage, upstream=upstream.url) as mirror:
        mine = HfApi(endpoint=mirror.url, token=False)
        mine.model_info("org/base-model")  # mirrored: main only
        ids = _revision_setup(upstream)
        fetched = _downloads(upstream)

        notes = hf_hub_download("org/base-model", "NOTES.md", revision="dev", endpoint=mirror.url,
                                cache_dir=tmp_path / "a", token=False)
        assert Path(notes).read_bytes() == b"dev notes\n"
        assert _downloads(upstream) == fetched + 1  # only the new file: the others were reused from main
        refs = mine.list_repo_refs("org/base-model")
        assert {b.name: b.target_commit for b in refs.branches}["dev"] == ids["dev"]
        assert mine.model_info("org/base-model", revision="v1").sha == ids["first"]
        assert {t.name: t.target_commit for t in mine.list_repo_refs("org/base-model").tags} == {"v1": ids["first"]}
        old = Path(snapshot_download("org/base-model", revision=ids["first"], endpoint=mirror.url,
                                     cache_dir=tmp_path / "b", token=False))
        assert old.name == ids["first"] and (old / "config.json").read_bytes() == b'{"hidden_size": 32}'
        assert _downloads(upstream) == fetched + 1

        upstream.stop()  # fetched once: served from the mirror's storage from now on
        again = hf_hub_download("org/base-model", "NOTES.md", revision="dev", endpoint=mirror.url,
                                cache_dir=tmp_path / "c", token=False, force_download=True)
        assert Path(again).read_bytes() == b"dev notes\n"
        assert mine.model_info("org/base-model", revision=ids["dev"]).sha == ids["dev"]
        with pytest.raises(HfHubHTTPError) as error:  # a revision it lacks, the upstream being down: 502
            mine.model_info("org/base-model", revision="never")
        assert error.value.response.status_code == 502


def test_a_revision_neither_has_is_not_found_and_local_repos_never_ask_the_upstream(upstream, folder_storage):
    with HubServer(folder_storage, upstream=upstream.url) as mirror:
        mine = HfApi(endpoint=mirror.url, token=False)
        mine.model_info("org/base-model")
        with pytest.raises(RevisionNotFoundError):
            mine.model_info("org/base-model", revision="no-such-branch")
        mine.create_repo("org/made-here")
        asked = upstream.metrics.snapshot()["requests"]
        with pytest.raises(RevisionNotFoundError):
            mine.model_info("org/made-here", revision="dev")
        assert upstream.metrics.snapshot()["requests"] == asked


def _move_upstream_main(upstream: HubServer, text: bytes) -> str:
    return HfApi(endpoint=upstream.url, token=WRITE_TOKEN).upload_file(
        path_or_fileobj=text, path_in_repo="config.json", repo_id="org/base-model").oid


def test_main_is_checked_again_once_the_ttl_has_passed(upstream, folder_storage, tmp_path):
    with HubServer(folder_storage, upstream=upstream.url, upstream_ttl_s=1.0) as mirror:
        mine = HfApi(endpoint=mirror.url, token=False)
        first = mine.model_info("org/base-model").sha
        moved = _move_upstream_main(upstream, b'{"hidden_size": 64}')
        assert mine.model_info("org/base-model").sha == first  # within the TTL: as fetched
        time.sleep(1.2)
        assert mine.model_info("org/base-model").sha == moved  # the upstream id, kept
        path = hf_hub_download("org/base-model", "config.json", endpoint=mirror.url, cache_dir=tmp_path / "a",
                               token=False)
        assert Path(path).read_bytes() == b'{"hidden_size": 64}'
        assert [c.commit_id for c in mine.list_repo_commits("org/base-model")][:2] == [moved, first]
        assert mine.model_info("org/base-model", revision=first).sha == first  # the old one still resolves
        upstream.stop()
        time.sleep(1.2)  # due again, the upstream gone: the check fails, the repo keeps serving what it has
        assert mine.model_info("org/base-model").sha == moved


def test_mirror_refresh_moves_main_now_and_never_over_local_commits(upstream, folder_storage, tmp_path, capsys):
    spec = ["--storage", str(folder_storage.root), "--upstream", upstream.url]
    with HubServer(folder_storage, upstream=upstream.url) as mirror:  # no TTL: main as first fetched
        mine = HfApi(endpoint=mirror.url, token=WRITE_TOKEN)
        first = mine.model_info("org/base-model").sha
        moved = _move_upstream_main(upstream, b'{"hidden_size": 64}')
        time.sleep(0.2)
        assert mine.model_info("org/base-model").sha == first
        capsys.readouterr()
        assert main(["mirror", "refresh", "org/base-model", *spec]) == 0
        assert f"moved from {first} to {moved}" in capsys.readouterr().out
        assert mine.model_info("org/base-model").sha == moved  # the running hub serves it at once
        assert main(["mirror", "refresh", "org/base-model", *spec]) == 0
        assert "main is current" in capsys.readouterr().out

        local = mine.upload_file(path_or_fileobj=b"ours\n", path_in_repo="LOCAL.md", repo_id="org/base-model").oid
        _move_upstream_main(upstream, b'{"hidden_size": 128}')
        assert main(["mirror", "refresh", "org/base-model", *spec]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "commits made here" in err[0], err
        assert mine.model_info("org/base-model").sha == local

        mine.create_repo("org/made-here")
        assert main(["mirror", "refresh", "org/made-here", *spec]) == 2
        assert "not mirrored" in capsys.readouterr().err
    assert main(["mirror", "refresh", "org/base-model", "--storage", str(tmp_path / "none"),
                 "--upstream", upstream.url]) == 2
    assert main(["serve", "--storage", str(tmp_path / "s"), "--upstream", upstream.url,
                 "--upstream-ttl-minutes", "nan"]) == 2
    assert "--upstream-ttl-minutes nan" in capsys.readouterr().err
