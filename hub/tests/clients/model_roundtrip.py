"""Client process: a tiny Qwen2 model through ``push_to_hub`` and ``from_pretrained``, unchanged transformers.

Usage: model_roundtrip.py REPO_ID. Built locally (no downloads); prints one JSON line.
"""

import json
import sys

import torch
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

repo_id = sys.argv[1]
torch.manual_seed(0)
config = Qwen2Config(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    intermediate_size=64,
    vocab_size=128,
)
model = Qwen2ForCausalLM(config)
model.push_to_hub(repo_id, private=True, commit_message="tiny model")

loaded = AutoModelForCausalLM.from_pretrained(repo_id)
original = model.state_dict()
same = all(torch.equal(original[name], tensor) for name, tensor in loaded.state_dict().items() if name in original)
assert same, "weights changed on the way through the hub"
assert AutoConfig.from_pretrained(repo_id).hidden_size == 32

info = HfApi().model_info(repo_id, files_metadata=True)
lfs = sorted(s.rfilename for s in info.siblings if s.lfs is not None)
print(json.dumps({"same": same, "files": sorted(s.rfilename for s in info.siblings), "lfs": lfs, "sha": info.sha}))
