"""Batch scoring throughput: the scoring job's path (read shards, prepare inputs, predict, decode,
write Parquet parts) / the bare torch module's forward pass on the same tensors, measured in one
run. Limit: >= 0.9. The bare loop is the fastest one: ``torch.inference_mode``, same batch size.

    python bench/score_bench.py [--device cpu|cuda] [--rows 4096] [--out bench/results/score.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from crnn.config import DigitStringsData, ModelConfig, PreprocessingConfig
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.inference import Predictor
from crnn.models import create_model, model_kwargs
from crnn.scoring import ModelVersionRef, score, shard_chunks
from crnn.train import checkpoint_meta, load_checkpoint, save_checkpoint

LIMIT = 0.9
LINES = {"digit_scale": 1, "margin": 2, "min_digits": 3, "max_digits": 8, "max_gap": 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/results/score.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crnn-score-bench-") as tmp:
        work = Path(tmp)
        data = DigitStringsData(lines={"train": 64, "val": 64, "test": args.rows}, **LINES)
        prep = PreprocessingConfig(
            augmentation={"copies": 0}, shard_rows=4096
        )  # = crnn score's default chunk
        manifest_path = preprocess(data, prep, work / "shards").manifest_path
        manifest = load_manifest(manifest_path)
        model_cfg = ModelConfig(architecture="crnn", head="ctc")  # the default pipeline's model
        kwargs = model_kwargs(model_cfg, manifest.features)
        meta = checkpoint_meta(manifest, model_cfg.architecture, kwargs)
        torch.manual_seed(0)
        model = create_model(
            "crnn", tuple(manifest.input_shape), meta["model"]["num_classes"], **kwargs
        )
        save_checkpoint(work / "model.pt", model, meta)
        predictor = Predictor(load_checkpoint(work / "model.pt"), device=args.device)
        ref = ModelVersionRef("bench", "1", "none")
        splits = [load_split(manifest_path, s).inputs for s in ("train", "val", "test")]
        tensors = torch.cat(splits).to(predictor.device)
        rows = len(tensors)

        def bare() -> float:
            started = time.perf_counter()
            with torch.inference_mode():  # the fastest bare loop: as the scoring job runs
                for i in range(0, rows, args.batch_size):
                    predictor.model(tensors[i : i + args.batch_size])
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            return rows / (time.perf_counter() - started)

        attempt = iter(range(1000))

        def job() -> float:
            out = work / f"scored-{next(attempt)}"
            started = time.perf_counter()
            summary = score(
                predictor, ref, shard_chunks(manifest_path), out, "bench", args.batch_size
            )
            seconds = time.perf_counter() - started
            assert summary.rows_scored == rows
            return rows / seconds

        bare(), job()  # warm-up
        bares, jobs = [], []
        for _ in range(args.repeats):
            bares.append(bare())
            jobs.append(job())
    # The figure: the median over repeats of job / the bare pass just before it. Neighbours in
    # time share the machine's load, so on a shared machine this is far steadier than best-of-each
    # (on this 2-core VM best-of-each swung 0.89-1.05 between runs of the same code, this 0.96-1.02)
    paired = sorted(j / b for j, b in zip(jobs, bares, strict=True))
    ratio = paired[len(paired) // 2]
    best_of_each = max(jobs) / max(bares)
    report = {
        "device": args.device,
        "rows": rows,
        "input_shape": manifest.input_shape,
        "bare_rows_per_s": max(bares),
        "scoring_rows_per_s": max(jobs),
        "ratio": ratio,
        "ratio_best_of_each": best_of_each,
        "bare_rows_per_s_each": bares,
        "scoring_rows_per_s_each": jobs,
        "limit": LIMIT,
    }
    print(f"{'figure':<44} {'value':>10}  limit")
    print(f"{'bare torch forward, rows/s':<44} {max(bares):>10.0f}")
    print(f"{'scoring job (read, predict, decode, write)':<44} {max(jobs):>10.0f}")
    status = "ok" if ratio >= LIMIT else "SHORT"
    print(f"{'scoring / bare (median of adjacent pairs)':<44} {ratio:>10.3f}  {status} >= {LIMIT}")
    print(f"{'scoring / bare (best of each)':<44} {best_of_each:>10.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
