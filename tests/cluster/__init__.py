"""Tests against a real single-node SLURM cluster (a package, so that its conftest does not shadow tests/conftest.py)."""
