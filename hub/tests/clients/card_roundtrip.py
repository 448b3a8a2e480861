"""Client process: model and dataset cards pushed, updated and read through HF_ENDPOINT, unchanged huggingface_hub.

Usage: card_roundtrip.py MODEL_REPO DATASET_REPO. Prints one JSON line with what the repo infos said.
"""

import json
import sys

from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard, ModelCardData, metadata_update

model_repo, dataset_repo = sys.argv[1], sys.argv[2]
api = HfApi()
api.create_repo(model_repo)
data = ModelCardData(license="apache-2.0", language=["en", "fr"], tags=["grpo", "gsm8k"], datasets=["openai/gsm8k"],
                     base_model="Qwen/Qwen2.5-0.5B-Instruct", library_name="transformers",
                     pipeline_tag="text-generation")
ModelCard.from_template(data, model_id="carded").push_to_hub(model_repo)  # validate-yaml, then a commit
pushed = api.model_info(model_repo)
metadata_update(model_repo, {"tags": ["grpo", "gsm8k", "reasoning"]}, overwrite=True)  # reads the card back
updated = api.model_info(model_repo)

api.create_repo(dataset_repo, repo_type="dataset")
data = DatasetCardData(language=["en"], license="mit", task_categories=["question-answering"],
                       size_categories=["1K<n<10K"], pretty_name="GSM mini")
DatasetCard.from_template(data).push_to_hub(dataset_repo)
dataset = api.dataset_info(dataset_repo)
print(json.dumps({
    "license": pushed.card_data.license,
    "language": pushed.card_data.language,
    "base_model": pushed.card_data.base_model,
    "library_name": pushed.library_name,
    "pipeline_tag": pushed.pipeline_tag,
    "tags": pushed.tags,
    "updated_tags": updated.tags,
    "loaded_license": ModelCard.load(model_repo).data.license,
    "dataset_pretty_name": dataset.card_data.pretty_name,
    "dataset_tags": dataset.tags,
}))
