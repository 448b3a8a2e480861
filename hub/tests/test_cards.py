"""Model and dataset cards: README.md front matter becomes ``card_data`` and ``tags`` in repo info."""

from __future__ import annotations

import json

from huggingface_hub import HfApi

from reasoner_hub.commits import AddFile, git_blob_oid

from .helpers import client_env, run_client


def test_cards_pushed_and_updated_by_the_client(folder_hub, tmp_path):
    result = run_client("card_roundtrip.py", ["org/carded", "org/carded-data"], client_env(folder_hub.url, tmp_path))
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["license"] == "apache-2.0" and seen["language"] == ["en", "fr"]
    assert seen["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and seen["loaded_license"] == "apache-2.0"
    assert seen["library_name"] == "transformers" and seen["pipeline_tag"] == "text-generation"
    assert seen["tags"] == ["transformers", "grpo", "gsm8k", "text-generation", "dataset:openai/gsm8k",
                            "base_model:Qwen/Qwen2.5-0.5B-Instruct", "en", "fr", "license:apache-2.0"]
    assert "reasoning" in seen["updated_tags"] and "reasoning" not in seen["tags"]
    assert seen["dataset_pretty_name"] == "GSM mini"
    assert {"language:en", "license:mit", "task_categories:question-answering",
            "size_categories:1K<n<10K"} <= set(seen["dataset_tags"])


def test_each_revision_shows_its_own_card(folder_api):
    folder_api.create_repo("org/carded-data", repo_type="dataset")
    folder_api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md",
                           repo_id="org/carded-data", repo_type="dataset")
    folder_api.create_branch("org/carded-data", branch="dev", repo_type="dataset")
    folder_api.upload_file(path_or_fileobj=b"---\nlicense: cc-by-4.0\n---\n", path_in_repo="README.md",
                           repo_id="org/carded-data", repo_type="dataset", revision="dev")
    assert folder_api.dataset_info("org/carded-data", revision="dev").card_data.license == "cc-by-4.0"
    assert folder_api.dataset_info("org/carded-data").card_data.license == "mit"
    assert folder_api.dataset_info("org/carded-data").tags == ["license:mit"]


def test_cards_without_usable_metadata(folder_hub, folder_api):
    folder_api.create_repo("org/plain")
    info = folder_api.model_info("org/plain")
    assert info.card_data is None and info.tags == []
    cases = {
        b"# just prose\n": None,
        b"---\nlicense: [unclosed\n---\n": None,  # invalid YAML: no card data, info still answers
        b"---\n- a\n- b\n---\n": None,  # not a mapping
        b"---\nbase: &a [1, 2]\ncopy: *a\n---\n": None,  # aliases are refused
        b"---\n---\nbody\n": None,  # empty metadata
        b"---\nlicense: mit\nreleased: 2024-05-01\n---\n": {"license": "mit", "released": "2024-05-01"},
    }
    anonymous = HfApi(endpoint=folder_hub.url, token=False)
    store, repo = folder_hub.store, folder_hub.store_repo("model", "org/plain")
    for readme, expected in cases.items():
        # Straight into the store: the client refuses to upload a README with invalid metadata, git does not.
        add = AddFile("README.md", store.put_blob(repo, readme), len(readme), False, git_blob_oid(readme))
        store.commit(repo, "main", [add], "card", "", "test")
        info = anonymous.model_info("org/plain")
        if expected is None:
            assert info.card_data is None and info.tags == [], readme
        else:
            assert info.card_data.to_dict() == expected, readme
