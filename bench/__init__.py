"""Benchmarks: each prints a table and writes bench/results/<name>.json (see bench/README.md)."""
