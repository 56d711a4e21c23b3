# Two commands on a fresh machine with Python 3.11 and pip (no conda):
#   make run    set up .venv with pinned dependencies and run the workflow on the embedded example
#   make test   set up .venv if needed and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: run test test-fast lint clean venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -c "import site; open(site.getsitepackages()[0] + '/snakescope.pth', 'w').write('$(CURDIR)\n')"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Unit tests only (library functions on small arrays, no Snakemake run): < 1 min.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not workflow"

# Real-data accuracy on every set with ground truth (../shared/data), checked against
# benchmarks/results/accuracy.csv (a drop > 0.01 fails): ~15 min on 2 cores.
.PHONY: accuracy
accuracy: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py --check --no-baseline

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results .snakemake

# Tests against a real single-node SLURM cluster on 127.0.0.1 (needs root; installs
# the Debian packages slurmctld slurmd slurm-client munge if missing): start it,
# run tests/cluster with profiles/slurm + profiles/slurm-test, stop it (also when
# the tests fail). Not part of `make test`.
.PHONY: test-cluster
test-cluster: $(STAMP)
	SNAKESCOPE_CLUSTER=1 $(BIN)/python tests/cluster/with_slurm.py --install -- $(BIN)/python -m pytest -q tests/cluster
