"""The trainer's side of the hub: every request goes through ``huggingface_hub``.

``env`` (the environment set before ``huggingface_hub`` is imported), ``calls`` (preflight, pinning to commits,
node-local snapshots) and ``prefetch`` (``reasoner prefetch``: one download per node). The hub server itself is
the separate ``reasoner-hub`` distribution.
"""
