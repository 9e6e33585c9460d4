"""Preprocessing a >= 50k-line set here, and on a Dask cluster of 1 and 2 worker processes.

The same shard set each time (its digest and bytes: checked); rows/s of each and the speedup over
here. The bound, measured in the same run: this process still reads the source (the workers
validate, normalize and augment each chunk), so the speedup cannot pass (time here) / (time to
read the source), nor the number of workers. On a 2-core machine the honest ceiling is ~2x and
less: the reading process shares those cores. Exits 1 when 2 workers fall short of the limit and
of 90 % of the bound.

    python bench/cluster_scale.py [--lines 50000] [--out bench/results/cluster_scale.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.verdict import verdict  # noqa: E402

LIMIT = 1.5  # speedup of 2 workers over this process


def shard_bytes(root: Path) -> str:
    digest = hashlib.sha256()
    for path in [*sorted(root.rglob("*.parquet")), root / "manifest.json"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_seconds(data: object) -> float:
    """What this process does alone whatever the cluster: read every split (and the training
    split once more, to fit the statistics)."""
    from crnn.data.catalog import open_source
    from crnn.data.preprocess import CHUNK_ROWS
    from crnn.data.sources import SPLITS

    source = open_source(data)
    started = time.perf_counter()
    for split in ("train", *SPLITS):
        for _ in source.chunks(split, CHUNK_ROWS):
            pass
    return time.perf_counter() - started


def main() -> int:
    from crnn.cluster import connect
    from crnn.config import DigitStringsData, PreprocessingConfig
    from crnn.data.preprocess import preprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cluster_scale.json")
    args = parser.parse_args()
    n = args.lines
    data = DigitStringsData(lines={"train": n * 8 // 10, "val": n // 10, "test": n // 10})
    prep = PreprocessingConfig(
        augmentation={"copies": 1, "rotation_degrees": 3, "scale": [0.9, 1.1], "noise_std": 0.03}
    )
    rows: dict[str, dict[str, float]] = {}
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("here", "local:1", "local:2"):
            root = Path(tmp) / name.replace(":", "-")
            if name == "here":
                started = time.perf_counter()
                shards = preprocess(data, prep, root)
            else:
                with connect(name) as mapper:  # the cluster is up before the clock starts
                    started = time.perf_counter()
                    shards = preprocess(data, prep, root, mapper)
            seconds = time.perf_counter() - started
            digests.add((shards.digest, shard_bytes(shards.root)))
            rows[name] = {"seconds": round(seconds, 1), "rows_per_s": round(n / seconds, 1)}
    reading = read_seconds(data)
    base = rows["here"]["seconds"]
    for figures in rows.values():
        figures["speedup"] = round(base / figures["seconds"], 2)
    bound = min(2.0, base / reading)
    status, ok = verdict(rows["local:2"]["speedup"], ">=", LIMIT, bound)
    same = len(digests) == 1
    for name, figures in rows.items():
        print(
            f"{name:8} {figures['seconds']:7.1f} s  {figures['rows_per_s']:8.0f} lines/s  "
            f"x{figures['speedup']:.2f}"
        )
    print(
        f"reading alone {reading:.1f} s: bound x{bound:.2f}; 2 workers {status} "
        f"(limit x{LIMIT}); same shard set: {same}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "lines": n,
        "rows": rows,
        "read_seconds": round(reading, 1),
        "bound": bound,
        "limit": LIMIT,
        "status": status,
        "same_shard_set": same,
    }
    args.out.write_text(json.dumps(result, indent=2))
    return 0 if ok and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
