"""What verifying shards costs training: the same training run with every shard's sha256 and row
count checked on read (once per process and shard, as `crnn run` does) ÷ the same run unchecked,
measured side by side in pairs (which one goes first alternates), in one process; the figure is
the median of the pairs' ratios.

    python bench/integrity_bench.py [--lines 4000] [--epochs 2] [--runs 5]

Limit: checked / unchecked wall time <= 1.03. Exits 1 when short, and says what bounds it (the
bytes hashed, at the sha256 rate measured here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from crnn.config import DigitStringsData, ModelConfig, PreprocessingConfig, TrainingConfig
from crnn.data import shards as shard_files
from crnn.data.preprocess import preprocess
from crnn.engine.train import train_on_shards

LIMIT = 1.03


def train_once(manifest: Path, model: ModelConfig, cfg: TrainingConfig, out: Path, check: bool):
    shard_files.VERIFY = check
    shard_files.forget_verified()  # a fresh process: every shard is hashed once
    started = time.perf_counter()
    train_on_shards(manifest, model, cfg, out)
    return time.perf_counter() - started


def sha256_rate(nbytes: int = 256 << 20) -> float:
    """Bytes per second of hashlib's sha256 on this machine."""
    block = b"\0" * (1 << 20)
    h = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(nbytes >> 20):
        h.update(block)
    return nbytes / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "integrity.json"))
    args = parser.parse_args()
    data = DigitStringsData(lines={"train": args.lines, "val": 200, "test": 200})
    model = ModelConfig(architecture="crnn_small", pool=[(2, 2), (2, 2), (2, 1)])
    cfg = TrainingConfig(
        epochs=args.epochs,
        batch_size=64,
        device="cpu",
        loader={"workers": 0},
        seed=0,
        early_stopping={"monitor": "val_cer", "mode": "min"},  # what a pipeline resolves
    )
    with tempfile.TemporaryDirectory(prefix="crnn-integrity-") as tmp:
        root = Path(tmp)
        built = preprocess(data, PreprocessingConfig(), root / "shards")
        manifest = shard_files.Manifest.from_file(built.manifest_path)
        nbytes = sum(s.bytes for s in manifest.shards)
        times: dict[bool, list[float]] = {True: [], False: []}
        train_once(built.manifest_path, model, cfg, root / "warm", False)  # caches, allocator
        for k in range(args.runs):
            for check in (k % 2 == 0, k % 2 != 0):  # alternate which goes first
                times[check].append(train_once(built.manifest_path, model, cfg, root / "r", check))
    shard_files.VERIFY = True
    checked, unchecked = statistics.median(times[True]), statistics.median(times[False])
    # the median of the pairs' ratios: a pair ran back to back, under the same load
    ratio = statistics.median(c / u for c, u in zip(times[True], times[False], strict=True))
    rate = sha256_rate()
    figures = {
        "checked_s": checked,
        "unchecked_s": unchecked,
        "ratio": ratio,
        "limit": LIMIT,
        "shard_bytes": nbytes,
        "sha256_bytes_per_s": rate,
    }
    print(f"training, shards checked on read   {checked:8.2f} s")
    print(f"training, unchecked                {unchecked:8.2f} s")
    print(f"ratio                              {ratio:8.3f}   (limit {LIMIT})")
    print(f"shard bytes hashed {nbytes / 1e6:.1f} MB at {rate / 1e6:.0f} MB/s sha256")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    if ratio > LIMIT:
        print(
            f"SHORT: checked / unchecked {ratio:.3f} > {LIMIT}; bounded by hashing "
            f"{nbytes / 1e6:.1f} MB once ({nbytes / rate:.2f} s at the sha256 rate here)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
