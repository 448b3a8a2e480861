"""Pull-through mirroring: one of our hubs serves as the upstream of another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from reasoner_hub.auth import TokenBook
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
