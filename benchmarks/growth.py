"""Cost growth: per-step time vs image size, tracking time vs objects per frame.

Prints two tables:

1. each per-frame library step (smooth, threshold, refine, split/watershed,
   measure, rings) on synthetic nuclei images of 512^2, 1024^2 and 2048^2 px at
   the same density, in ms, and the ratio to the 512^2 time (pixels grow 4x per row);
2. ``track_objects`` on random-walk objects, 10 frames, 100 to 5,000 objects per
   frame, with a realistic and a huge (1,000 px) linking distance: time and the
   time per object (near-constant = near-linear growth).

Usage: .venv/bin/python benchmarks/growth.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from overhead import make_image  # noqa: E402
from snakescope import measure, rings, segment, track  # noqa: E402


def best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def steps_table() -> pd.DataFrame:
    rows = []
    for size in (512, 1024, 2048):
        img = make_image(0, size).astype(np.float32)
        d = 18
        sm = segment.smooth(img, size_px=d / 12)
        mask, _ = segment.threshold(sm, method="otsu")
        ref = segment.refine(mask, min_diameter_px=0.4 * d)
        lab = segment.label_frame(ref, min_distance_px=0.4 * d, min_diameter_px=0.4 * d, max_diameter_px=3 * d)
        ring = rings.ring_labels(lab, inner_px=2, width_px=3, buffer_px=2)
        channels = {"a": img, "b": img, "c": img}
        row = {
            "size": f"{size}^2",
            "objects": int(lab.max()),
            "smooth": best(lambda: segment.smooth(img, size_px=d / 12)),
            "threshold": best(lambda: segment.threshold(sm, method="otsu")),
            "refine": best(lambda: segment.refine(mask, min_diameter_px=0.4 * d)),
            "split": best(lambda: segment.label_frame(ref, min_distance_px=0.4 * d, min_diameter_px=0.4 * d,
                                                      max_diameter_px=3 * d)),
            "measure(3 ch)": best(lambda: measure.measure_objects(lab, channels)),
            "rings": best(lambda: rings.ring_stats(lab, rings.ring_labels(lab, inner_px=2, width_px=3, buffer_px=2),
                                                   channels, reporters=["b", "c"])),
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ["smooth", "threshold", "refine", "split", "measure(3 ch)", "rings"]:
        table[f"{col} x"] = table[col] / table[col].iloc[0]
    return table


def random_walk(n: int, frames: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    side = np.sqrt(n) * 30.0  # constant density: ~30 px between neighbours
    pos = rng.uniform(0, side, (n, 2))
    rows = []
    for t in range(frames):
        pos = pos + rng.normal(0, 2.0, pos.shape)
        keep = rng.random(n) > 0.03  # 3 % missed detections
        for i in np.flatnonzero(keep):
            rows.append((t, i + 1, pos[i, 0], pos[i, 1]))
    return pd.DataFrame(rows, columns=["frame", "label", "x", "y"])


def tracking_table() -> pd.DataFrame:
    rows = []
    for n in (100, 500, 1000, 2000, 5000):
        objects = random_walk(n, 10)
        for dist in (15.0, 1000.0):
            ms = best(lambda: track.track_objects(objects, max_distance_px=dist), repeat=1)
            rows.append({"objects/frame": n, "max_distance_px": dist, "ms": ms, "us/object": ms * 1000 / len(objects)})
    return pd.DataFrame(rows)


def main() -> None:
    pd.set_option("display.width", 200)
    print("Per-frame step times (ms) vs image size (same density of nuclei):")
    print(steps_table().round(1).to_string(index=False))
    print("\nTracking time vs objects per frame (10 frames, 3 % missed detections):")
    print(tracking_table().round(1).to_string(index=False))


if __name__ == "__main__":
    main()
