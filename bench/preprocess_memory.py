"""Preprocessing memory at N and 10N samples, each in a fresh process, measured in one run.

Peak memory must not grow with the dataset: sources stream chunks (text tables are re-read rather
than held), normalization statistics are accumulated, shards are flushed at `shard_rows`.
Measured for the embedded digit-strings source, a CSV text table and a folder of line images with
their NAME.gt.txt transcriptions. Prints a table, writes JSON, exits non-zero when a ratio passes
the limit.

    python bench/preprocess_memory.py [--n 5000] [--sources ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LIMIT = 1.20
SOURCES = ("digit_strings", "text_table", "line_images")

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from crnn.config import DigitStringsData, LineImagesData, PreprocessingConfig, TextTableData
from crnn.data.preprocess import preprocess
from crnn.data.loader import load_manifest

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

kind, n, table, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
if kind == "digit_strings":
    data = DigitStringsData(lines={"train": n, "val": max(1, n // 10), "test": max(1, n // 10)})
    prep = PreprocessingConfig(augmentation={"copies": 1, "rotation_degrees": 2, "noise_std": 0.03})
elif kind == "line_images":
    data = LineImagesData(path=table, height=32, width=256)
    prep = PreprocessingConfig(  # shards of 2048 lines of 32x256 (64 MiB)
        augmentation={"copies": 1, "shear_degrees": 8, "blur_sigma": 0.8}, shard_rows=2048
    )
else:
    data = TextTableData(path=table, max_length=32)
    prep = PreprocessingConfig(
        normalization="none", augmentation={"copies": 1, "token_dropout": 0.1}
    )
baseline = peak_mib()  # after imports: torch, pyarrow, sklearn
start = time.perf_counter()
shards = preprocess(data, prep, out)
seconds = time.perf_counter() - start
rows = sum(s.rows for s in load_manifest(shards.manifest_path).shards)
print(json.dumps({"source": kind, "n": n, "rows": rows, "seconds": seconds,
                  "baseline_mib": baseline, "peak_mib": peak_mib()}))
"""

WORDS = [f"w{i}" for i in range(3000)]


def write_table(path: Path, n: int) -> Path:
    """A CSV of n reviews of 8-20 words, two labels: the text table measured."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            words = rng.choice(WORDS, size=int(rng.integers(8, 21)))
            writer.writerow([" ".join(words), "pos" if i % 2 else "neg"])
    return path


def write_lines(folder: Path, n: int) -> Path:
    """n rendered line images beside their NAME.gt.txt: the line folder measured."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.lines import render_lines

    render_lines(folder, n, seed=0)
    return folder


def measure(kind: str, n: int, workdir: Path) -> dict[str, float]:
    table = Path("-")
    if kind == "text_table":
        table = write_table(workdir / f"table-{n}.csv", n)
    elif kind == "line_images":
        table = write_lines(workdir / f"lines-{n}", n)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(n), str(table), str(workdir / f"{kind}-{n}")],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training samples at N (default 5000)")
    parser.add_argument("--out", default="bench/results/preprocess_memory.json")
    parser.add_argument(
        "--sources", nargs="+", default=list(SOURCES), choices=SOURCES, help="what to measure"
    )
    args = parser.parse_args()
    report, ok = {}, True
    print(
        f"{'source':>14} {'samples':>8} {'rows':>8} {'seconds':>8} {'after imports MiB':>18} "
        f"{'peak MiB':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.sources:
            # texts are small samples; line images are files rendered first, and at N already
            # fill a chunk (2048 training lines): the ratio shows growth, not a fuller chunk
            n_text = {"text_table": args.n * 10, "line_images": args.n // 2}.get(kind, args.n)
            small, large = measure(kind, n_text, Path(tmp)), measure(kind, 10 * n_text, Path(tmp))
            for r in (small, large):
                print(
                    f"{kind:>14} {r['n']:>8} {r['rows']:>8} {r['seconds']:>8.1f} "
                    f"{r['baseline_mib']:>18.0f} {r['peak_mib']:>9.0f}"
                )
            ratio = large["peak_mib"] / small["peak_mib"]
            work = (large["peak_mib"] - large["baseline_mib"]) / max(
                small["peak_mib"] - small["baseline_mib"], 1e-9
            )
            print(
                f"{kind:>14} peak(10N) / peak(N) = {ratio:.3f} (limit {LIMIT:.2f}); "
                f"memory above imports x{work:.2f}"
            )
            report[kind] = {"N": small, "10N": large, "peak_ratio": ratio, "work_ratio": work}
            ok = ok and ratio <= LIMIT
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "limit": LIMIT}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
