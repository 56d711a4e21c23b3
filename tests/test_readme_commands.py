"""Every snakemake command shown in README.md and config/README.md runs as written
(dry-run, on a tiny dataset standing in for `my.yaml`)."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml

from workflow_utils import ROOT, SNAKEMAKE, write_dataset

pytestmark = pytest.mark.workflow

_COMMAND = re.compile(r"(\.venv/bin/snakemake[^`\n#|]*)")


def _commands():
    found = []
    for doc in ("README.md", "config/README.md", "benchmarks/README.md"):
        path = ROOT / doc
        if path.exists():
            for m in _COMMAND.finditer(path.read_text()):
                command = m.group(1).strip().rstrip(".,;")
                if command not in found:
                    found.append(command)
    return found


COMMANDS = _commands()


def test_readmes_show_commands():
    assert len(COMMANDS) >= 4, COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    my = tmp_path / "my.yaml"
    my.write_text(yaml.safe_dump(config))
    args = shlex.split(command.replace("my.yaml", str(my)))
    assert args[0] == ".venv/bin/snakemake"
    if "--report" in args:
        pytest.skip("the report needs a finished run: tests/test_report_browser.py runs it")
    if "--unlock" in args:
        extra = []
    else:
        extra = ["-n"] if "-n" not in args else []
    result = subprocess.run([SNAKEMAKE, *extra, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"{command}\n{out[-3000:]}"
    assert "Traceback" not in out
