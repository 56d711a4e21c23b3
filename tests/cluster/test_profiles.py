"""The SLURM profiles stay in step with the workflow (no cluster needed; runs in `make test`).

Every rule must be in the ``per_image`` group (the per-image chain), be a local
rule (``localrule: LOCAL_RULES``, config key execution.local_rules), or be one of
the few rules without a job of their own; resources may only name existing rules;
the test profile may differ from the user profile only where the test cluster
differs.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TEST_PROFILE = ROOT / "profiles" / "slurm-test" / "config.yaml"

#: Rules without a job of their own (targets: run in the main process anyway).
UNGROUPED = {"all", "figures"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rule_outputs() -> dict[str, str]:
    """rule name -> text of its output: section, from workflow/rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        blocks = re.split(r"^rule\s+", text, flags=re.M)[1:]
        for block in blocks:
            name = block.split(":", 1)[0].strip()
            m = re.search(r"^    output:\n((?:        .*\n|\s*\n)+)", block, flags=re.M)
            out[name] = m.group(1) if m else ""
    return out


@pytest.fixture(scope="module")
def workflow_rules() -> set[str]:
    res = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--list-rules"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def local_rules() -> set[str]:
    """Rules whose rule file makes them local with execution.local_rules."""
    out = set()
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule\s+", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^    localrule: LOCAL_RULES\b", block, flags=re.M):
                out.add(block.split(":", 1)[0].strip())
    return out


def test_every_rule_is_grouped_local_or_known(workflow_rules):
    groups = load(PROFILE)["groups"]
    local = local_rules()
    assert {"tables", "qc", "dataset_figures", "traces", "provenance"} <= local
    missing = workflow_rules - set(groups) - local - UNGROUPED
    assert not missing, (f"rules {sorted(missing)} are neither in group per_image of profiles/slurm/config.yaml "
                         "(per-image chain) nor local rules (`localrule: LOCAL_RULES`): each would be its own "
                         "SLURM job, 5-7 s of Snakemake start each")
    assert not set(groups) & local, "a rule in a group is never local (Snakemake): drop it from the groups"
    unknown = set(groups) - workflow_rules
    assert not unknown, f"profiles/slurm/config.yaml groups name rules that do not exist: {sorted(unknown)}"


def test_groups_follow_the_wildcards(workflow_rules):
    groups = load(PROFILE)["groups"]
    outputs = rule_outputs()
    for rule, group in groups.items():
        assert "{image}" in outputs.get(rule, ""), f"rule {rule} is not per image but in group {group}"
        assert group == "per_image", rule
    assert set(load(PROFILE)["group-components"]) == set(groups.values())


def test_resources_name_existing_rules(workflow_rules):
    unknown = set(load(PROFILE)["set-resources"]) - workflow_rules
    assert not unknown, f"set-resources of profiles/slurm/config.yaml names unknown rules {sorted(unknown)}"


def test_test_profile_differs_only_where_the_test_cluster_does():
    user, test = load(PROFILE)["default-resources"], load(TEST_PROFILE)["default-resources"]
    assert {k: v for k, v in user.items() if k != "slurm_partition"} == \
           {k: v for k, v in test.items() if k != "slurm_partition"}
    assert test["slurm_partition"] == "debug"  # PartitionName of start_slurm.sh
    assert not {"groups", "group-components", "set-resources", "cores"} & set(load(TEST_PROFILE))


@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake-executor-plugin-slurm is not installed (pip install "
                           "snakemake-executor-plugin-slurm==2.8.0)")
@pytest.mark.parametrize("profiles", [["slurm"], ["slurm", "slurm-test"]])
def test_profile_parses_and_groups_the_example(tmp_path, profiles):
    """A dry run with the profile: Snakemake and the plugin accept every key."""
    args = [a for p in profiles for a in ("--profile", str(ROOT / "profiles" / p))]
    res = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                          "--configfile", str(ROOT / "config" / "config.yaml"), "-n", *args],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "per_image" in res.stdout + res.stderr
