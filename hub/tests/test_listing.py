"""Repo listings through the unchanged clients: ``list_models``/``list_datasets``/``list_spaces`` and
``hf models ls``/``hf datasets ls``/``hf spaces ls``, paginated, private repos only to their readers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub.auth import Token, TokenBook
from reasoner_hub.server import HubServer

from .helpers import client_env, raw_request

MEMBER = Token("mia-write", "hf_list_member_0001", "write", "mia", (("team", "write"),))
OUTSIDER = Token("oscar-write", "hf_list_outsider_01", "write", "oscar", (("other", "write"),))
CARD = b"---\nlicense: mit\ntags: [grpo]\npipeline_tag: text-generation\nlibrary_name: transformers\n---\n# alpha\n"
DATA_CARD = b"---\ntask_categories: [question-answering]\nlanguage: [en]\n---\n# gsm\n"
PUBLIC_MODELS = ["other/alpha-x", "team/alpha-model", "team/gamma"]


@pytest.fixture
def listed_hub(storage):
    """Page size 2, so every listing of 3+ repos takes several pages."""
    with HubServer(storage, tokens=TokenBook([MEMBER, OUTSIDER]), tree_page_size=2) as hub:
        member = HfApi(endpoint=hub.url, token=MEMBER.secret)
        outsider = HfApi(endpoint=hub.url, token=OUTSIDER.secret)
        member.create_repo("team/alpha-model")
        member.upload_file(path_or_fileobj=CARD, path_in_repo="README.md", repo_id="team/alpha-model")
        member.create_repo("team/beta-model", private=True)
        member.create_repo("team/gamma")
        member.create_repo("mia/private-one", private=True)
        outsider.create_repo("other/alpha-x")
        member.create_repo("team/gsm", repo_type="dataset")
        member.upload_file(path_or_fileobj=DATA_CARD, path_in_repo="README.md", repo_id="team/gsm", repo_type="dataset")
        member.create_repo("team/secret-data", repo_type="dataset", private=True)
        member.create_repo("team/demo", repo_type="space", space_sdk="static")
        yield hub


def _ids(items) -> list[str]:
    return [item.id for item in items]


def test_anonymous_lists_public_repos_over_several_pages(listed_hub):
    anonymous = HfApi(endpoint=listed_hub.url, token=False)
    assert _ids(anonymous.list_models()) == PUBLIC_MODELS
    status, headers, body = raw_request(listed_hub.url, "GET", "/api/models")
    assert status == 200 and len(json.loads(body)) == 2
    assert 'rel="next"' in headers["link"] and "cursor=2" in headers["link"]
    assert _ids(anonymous.list_models(limit=1)) == ["other/alpha-x"]
    assert _ids(anonymous.list_datasets()) == ["team/gsm"]
    assert _ids(anonymous.list_spaces()) == ["team/demo"]


def test_private_repos_are_listed_to_their_readers_only(listed_hub):
    member = HfApi(endpoint=listed_hub.url, token=MEMBER.secret)
    outsider = HfApi(endpoint=listed_hub.url, token=OUTSIDER.secret)
    assert _ids(member.list_models(author="team")) == ["team/alpha-model", "team/beta-model", "team/gamma"]
    assert _ids(member.list_models(author="mia")) == ["mia/private-one"]
    assert _ids(outsider.list_models(author="team")) == ["team/alpha-model", "team/gamma"]
    assert _ids(outsider.list_models(author="mia")) == []
    assert _ids(member.list_datasets(author="team")) == ["team/gsm", "team/secret-data"]
    assert _ids(outsider.list_datasets(author="team")) == ["team/gsm"]
    private = [info for info in member.list_models() if info.private]
    assert _ids(private) == ["mia/private-one", "team/beta-model"]


def test_search_filter_sort_and_card_data(listed_hub):
    api = HfApi(endpoint=listed_hub.url, token=False)
    assert _ids(api.list_models(search="ALPHA")) == ["other/alpha-x", "team/alpha-model"]
    assert _ids(api.list_models(search="alpha", author="team")) == ["team/alpha-model"]
    assert _ids(api.list_models(filter="grpo")) == ["team/alpha-model"]
    assert _ids(api.list_models(filter=["grpo", "license:mit"], pipeline_tag="text-generation")) == ["team/alpha-model"]
    assert _ids(api.list_models(gated=True)) == []
    newest_first = _ids(api.list_models(sort="last_modified"))
    assert newest_first[0] == "other/alpha-x" and sorted(newest_first) == PUBLIC_MODELS
    (alpha,) = api.list_models(search="alpha-model", cardData=True)
    assert alpha.card_data.license == "mit" and "grpo" in alpha.tags and alpha.pipeline_tag == "text-generation"
    (full,) = api.list_models(search="alpha-model", full=True)
    assert sorted(s.rfilename for s in full.siblings) == [".gitattributes", "README.md"]
    (gsm,) = api.list_datasets(search="gsm")
    assert "task_categories:question-answering" in gsm.tags and "language:en" in gsm.tags
    with pytest.raises(HfHubHTTPError, match="cannot filter repos by 'inference'") as error:
        list(api.list_models(inference="warm"))
    assert error.value.response.status_code == 400


def _hf(args: list[str], env: dict[str, str]) -> list[dict]:
    command = [sys.executable, "-m", "huggingface_hub.cli.hf", *args, "--format", "json"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_hf_cli_lists_models_datasets_and_spaces(listed_hub, tmp_path):
    env = client_env(listed_hub.url, tmp_path / "home", token=MEMBER.secret)
    models = _hf(["models", "ls", "--author", "team"], env)
    assert [m["id"] for m in models] == ["team/alpha-model", "team/beta-model", "team/gamma"]
    assert _hf(["models", "ls", "--search", "alpha", "--limit", "1"], env)[0]["id"] == "other/alpha-x"
    assert [d["id"] for d in _hf(["datasets", "ls", "--author", "team"], env)] == ["team/gsm", "team/secret-data"]
    assert [s["id"] for s in _hf(["spaces", "ls"], env)] == ["team/demo"]
    anonymous = client_env(listed_hub.url, tmp_path / "anon", token=None)
    assert [d["id"] for d in _hf(["datasets", "ls", "--author", "team"], anonymous)] == ["team/gsm"]
