"""Tests that need the local SLURM cluster (.ci/slurm-up.sh)."""
