"""Client process: ``Dataset.push_to_hub`` then ``load_dataset`` through HF_ENDPOINT, unchanged datasets.

Usage: datasets_roundtrip.py REPO_ID. Prints one JSON line with what it saw.
"""

import json
import sys

from datasets import Dataset, load_dataset
from huggingface_hub import HfApi

repo_id = sys.argv[1]
rows = {
    "question": [f"What is {i} + {i}?" for i in range(40)],
    "answer": [f"{i} + {i} = {2 * i}\n#### {2 * i}" for i in range(40)],
}
dataset = Dataset.from_dict(rows)
dataset.push_to_hub(repo_id, private=True)
first_sha = HfApi().dataset_info(repo_id).sha

loaded = load_dataset(repo_id, split="train")
assert loaded.to_dict() == rows, "the loaded rows differ from the pushed rows"

# A second push (new content), then the first one is still loadable by its commit hash.
Dataset.from_dict({"question": ["q"], "answer": ["#### 1"]}).push_to_hub(repo_id)
latest = load_dataset(repo_id, split="train", download_mode="force_redownload")
pinned = load_dataset(repo_id, split="train", revision=first_sha)
files = HfApi().list_repo_files(repo_id, repo_type="dataset")
print(json.dumps({"rows": len(loaded), "latest_rows": len(latest), "pinned_rows": len(pinned), "files": files}))
