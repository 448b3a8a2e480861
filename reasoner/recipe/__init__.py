"""Recipes: what a run is, as data.

One module per step of loading a recipe: ``files`` (finding and reading YAML), ``base`` (``base:`` inheritance),
``overrides`` (``--key value`` on the command line), ``sections`` (every key: its type, default and doc line, as
dataclass fields), ``schema`` (checking values against them), ``keydocs`` (the help's key list), ``values`` (values a
type alone does not refuse), ``batch`` (GRPO's batch-shape rule) and ``load`` (the straight path through them).
"""
