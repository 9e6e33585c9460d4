"""Preprocessing memory at N and 10N samples, each in a fresh process, measured in one run.

Peak memory must not grow with the dataset: sources stream chunks, normalization statistics are
accumulated, shards are flushed at `shard_rows`. Prints a table and writes JSON.

    python bench/preprocess_memory.py [--n 5000] [--out bench/results/preprocess_memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from crnn.config import DigitStringsData, PreprocessingConfig
from crnn.data.preprocess import preprocess
from crnn.data.loader import load_manifest

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

n, out = int(sys.argv[1]), Path(sys.argv[2])
data = DigitStringsData(lines={"train": n, "val": max(1, n // 10), "test": max(1, n // 10)})
prep = PreprocessingConfig(augmentation={"copies": 1, "rotation_degrees": 2, "noise_std": 0.03})
baseline = peak_mib()  # after imports: torch, pyarrow, sklearn
start = time.perf_counter()
shards = preprocess(data, prep, out)
seconds = time.perf_counter() - start
rows = sum(s.rows for s in load_manifest(shards.manifest_path).shards)
print(json.dumps({"n": n, "rows": rows, "seconds": seconds,
                  "baseline_mib": baseline, "peak_mib": peak_mib()}))
"""


def measure(n: int, workdir: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(workdir / f"shards-{n}")],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training lines at N (default 5000)")
    parser.add_argument("--out", default="bench/results/preprocess_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = measure(args.n, Path(tmp)), measure(10 * args.n, Path(tmp))
    ratio = large["peak_mib"] / small["peak_mib"]
    growth = (large["peak_mib"] - large["baseline_mib"]) / max(
        small["peak_mib"] - small["baseline_mib"], 1e-9
    )
    print(f"{'samples':>10} {'rows':>8} {'seconds':>8} {'after imports MiB':>18} {'peak MiB':>9}")
    for r in (small, large):
        print(
            f"{r['n']:>10} {r['rows']:>8} {r['seconds']:>8.1f} {r['baseline_mib']:>18.0f} "
            f"{r['peak_mib']:>9.0f}"
        )
    print(f"peak(10N) / peak(N) = {ratio:.3f}  (limit 1.20)")
    print(f"work memory (peak - after imports) at 10N / at N = {growth:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "N": small,
                "10N": large,
                "peak_ratio": ratio,
                "work_memory_ratio": growth,
                "limit": 1.2,
            },
            indent=2,
        )
    )
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
