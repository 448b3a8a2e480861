"""Fixtures for the SLURM tests: the real local cluster."""

from .cluster import slurm_cluster  # noqa: F401  (a pytest fixture, used by name)
