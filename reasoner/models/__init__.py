"""Models that need no hub: ``builtin`` (the ids ``tiny`` and ``smollm2``), ``tiny`` (a Qwen2-shaped model built
in seconds) and ``cache`` (the per-user cache both are built into, once)."""
