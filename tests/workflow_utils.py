"""Helpers to run the real workflow on tiny datasets in a temp directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run_snakemake(workdir: Path, config: dict | None = None, *args: str, root: Path = ROOT,
                  timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``snakemake`` on ``workdir`` with ``config`` written to workdir/config.yaml."""
    workdir = Path(workdir)
    cmd = [SNAKEMAKE, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    if config is not None:  # last: --configfile takes every value after it
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(workdir / "config.yaml")]
    full_env = dict(os.environ)
    full_env.pop("SNAKESCOPE_INLINE", None)
    if env:
        full_env.update(env)
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, env=full_env)


def tiny_nuclei(shape=(64, 64), n_frames: int = 1, seed: int = 0, channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A small TCYX uint16 image of touching disks (+ reporter channel) and its labels (TYX)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros((n_frames, channels) + shape, np.float32)
    labels = np.zeros((n_frames,) + shape, np.uint16)
    centres = [(16, 16), (16, 31), (44, 44), (46, 16)]
    for t in range(n_frames):
        for i, (cy, cx) in enumerate(centres, start=1):
            cy, cx = cy + t, cx + t
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2
            labels[t][inside & (labels[t] == 0)] = i
            img[t, 0][inside] = 800
            if channels > 1:  # cytoplasm (reporter 300) around every nucleus ...
                img[t, 1][(yy - cy) ** 2 + (xx - cx) ** 2 <= 13**2] = 300
        if channels > 1:  # ... and nuclei (reporter 200) on top: true C/N = 1.5
            img[t, 1][labels[t] > 0] = 200
    img += 100 + rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16), labels


def write_dataset(directory: Path, n_images: int = 2, n_frames: int = 1, channels: int = 2) -> dict:
    """Write tiny images + ground truth; return a config analysing them."""
    data = Path(directory) / "data"
    (data / "gt").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        img, labels = tiny_nuclei(n_frames=n_frames, seed=i, channels=channels)
        tifffile.imwrite(data / f"img{i}.tif", img, imagej=True, metadata={"axes": "TCYX"},
                         resolution=(2.0, 2.0))
        tifffile.imwrite(data / "gt" / f"img{i}.tif", labels, imagej=True, metadata={"axes": "TYX"})
    return {
        "datasets": {
            "tiny": {
                "images": str(data / "{image}.tif"),
                "channels": ["nucleus", "erk"][:channels],
                "pixel_size_um": 0.5,
                "segment": {"channel": "nucleus", "diameter": 8},
                "ground_truth": str(data / "gt" / "{image}.tif"),
            }
        }
    }


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse the 'Job stats' table of a (dry) run: rule -> count."""
    out = result.stdout + result.stderr
    jobs: dict[str, int] = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("job") and "count" in line:
            for row in lines[i + 2:]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                if parts[0] != "total":
                    jobs[parts[0]] = int(parts[1])
            break
    return jobs


def files_under(directory: Path) -> dict[str, bytes]:
    """All files below ``directory`` (relative path -> bytes)."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
