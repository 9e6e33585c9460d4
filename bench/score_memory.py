"""Scoring's memory stays flat with the input's size: the peak resident memory of a scoring job
over 10x the rows / the same job over 1x, each in a fresh process (the scoring core: read a
source in parts, prepare, predict, write Parquet parts), with output rows = input rows checked.

    python bench/score_memory.py [--rows 3000] [--scale 10]

Limit: <= 1.2. Exits 1 when short, and says what bounds it (what the larger job holds at once:
a part being read, one being scored, the parts' write buffers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

LIMIT = 1.2
CHUNK_ROWS = 512


def child(rows: int) -> dict[str, float]:
    """One scoring job over ``rows`` rows (digit-string lines, a random-init model)."""
    import torch

    from crnn.config import DigitStringsData, ModelConfig, PreprocessingConfig
    from crnn.data.loader import load_manifest
    from crnn.data.preprocess import preprocess
    from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint, save_checkpoint
    from crnn.inference.predictor import Predictor
    from crnn.inference.scoring import job_plan, score, source_chunks
    from crnn.models import create_model, model_kwargs
    from crnn.types.records import ModelVersionRef

    with tempfile.TemporaryDirectory(prefix="crnn-score-memory-") as tmp:
        root = Path(tmp)
        small = DigitStringsData(lines={"train": 64, "val": 16, "test": 16})
        prep = PreprocessingConfig(augmentation={"copies": 0})
        manifest = load_manifest(preprocess(small, prep, root / "shards").manifest_path)
        cfg = ModelConfig(architecture="crnn_small", pool=[[2, 2], [2, 2], [2, 1]])
        kwargs = model_kwargs(cfg, manifest.features)
        meta = checkpoint_meta(manifest, cfg.architecture, kwargs)
        torch.manual_seed(0)
        model = create_model(
            cfg.architecture, tuple(manifest.input_shape), meta.model.num_outputs, **kwargs
        )
        save_checkpoint(root / "model.pt", model, meta)
        predictor = Predictor(load_checkpoint(root / "model.pt"), device="cpu")
        data = DigitStringsData(lines={"train": rows, "val": 1, "test": 1}, seed=1)
        ref = ModelVersionRef("bench", "1", "run")
        chunks = source_chunks(data, CHUNK_ROWS)
        done = score(predictor, ref, chunks, root / "out", "raw", plan=job_plan(None, CHUNK_ROWS))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_mib": peak_kib / 1024, "rows_in": done.rows_in, "rows_scored": done.rows_scored}


def measure(rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(rows)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "score_memory.json")
    )
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    one, many = measure(args.rows), measure(args.rows * args.scale)
    ratio = many["peak_mib"] / one["peak_mib"]
    figures = {"one": one, "scaled": many, "scale": args.scale, "ratio": ratio, "limit": LIMIT}
    print(f"peak RSS, {one['rows_in']:>7} rows     {one['peak_mib']:8.0f} MiB")
    print(f"peak RSS, {many['rows_in']:>7} rows     {many['peak_mib']:8.0f} MiB")
    print(f"ratio ({args.scale}x rows / 1x)     {ratio:8.3f}   (limit {LIMIT})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    lost = [f for f in (one, many) if f["rows_in"] != f["rows_scored"]]
    if lost:
        print(f"FAILED: output rows differ from input rows: {lost}")
        return 1
    if ratio > LIMIT:
        print(
            f"SHORT: {ratio:.3f} > {LIMIT}; bounded by what a job holds at once (a part of "
            f"{CHUNK_ROWS} rows read ahead, one scored, the Parquet writer's buffers)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
