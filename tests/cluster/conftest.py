"""Registers the `cluster` marker (tests that need a real SLURM cluster, see test_slurm.py)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: runs the workflow on a real single-node SLURM cluster "
        "(only with SNAKESCOPE_CLUSTER=1 or CI=true; make test-cluster)")
