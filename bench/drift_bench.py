"""Drift monitoring's cost and false alarms at scale: what profiling a scoring job of 30,000 line
images and testing it costs (keeping the embeddings, the rows' features and part files, the tests),
timed where it happens, against the job's own time without it, in one run. Limit: <= 5 %. Also:
the 30k in-distribution rows show no drift, and 20 random in-distribution subsets of 1,000 rows
alarm at most once.

    python bench/drift_bench.py [--device cpu|cuda] [--rows 30000] [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crnn.config import DigitStringsData, ModelConfig, MonitoringConfig, PreprocessingConfig
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint, save_checkpoint
from crnn.inference.monitor import (
    PROFILE_DIR,
    job_drift,
    reference_profile,
    row_features,
    write_part_profile,
)
from crnn.inference.predictor import Predictions, Predictor
from crnn.inference.scoring import pin_job, score, shard_chunks
from crnn.models import create_model, model_kwargs, penultimate
from crnn.models.crnn import RecurrentHead
from crnn.monitoring import compare
from crnn.types.records import ModelVersionRef

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/verdict.py, however run
from verdict import verdict

LIMIT = 0.05  # overhead: (job with the profile) / (job without) - 1
ALARMS = 1  # of 20 in-distribution subsets
LINES = {"digit_scale": 1, "margin": 2, "min_digits": 3, "max_digits": 8, "max_gap": 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/results/drift.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crnn-drift-bench-") as tmp:
        work = Path(tmp)
        data = DigitStringsData(lines={"train": 64, "val": 2000, "test": args.rows}, **LINES)
        prep = PreprocessingConfig(augmentation={"copies": 0}, shard_rows=4096)
        manifest_path = preprocess(data, prep, work / "shards").manifest_path
        predictor = model(work, manifest_path, args.device)
        started = time.perf_counter()
        reference = reference_profile(predictor, manifest_path, MonitoringConfig())
        reference_s = time.perf_counter() - started
        ref = ModelVersionRef("bench", "1", "none")
        plain = []
        for k in range(args.repeats + 1):  # the first is a warm-up
            chunks = test_chunks(manifest_path)
            started = time.perf_counter()
            summary = score(predictor, ref, chunks, work / f"plain-{k}", "bench")
            plain.append(time.perf_counter() - started)
            assert summary.rows_scored == args.rows
        plain = plain[1:]
        costs = monitoring_costs(predictor, manifest_path, reference, work / "monitored")
        detected = costs.pop("detected")
        alarms = false_alarms(reference, work / "monitored")
    overhead = sum(costs.values()) / min(plain)
    report = {
        "device": args.device,
        "rows": args.rows,
        "reference_seconds": reference_s,
        "job_seconds": plain,
        "monitoring_seconds": costs,
        "overhead": overhead,
        "limit": LIMIT,
        "drift_detected_in_distribution": detected,
        "false_alarms_of_20": alarms,
    }
    print(f"{'figure':<52} {'value':>10}  limit")
    print(f"{'reference profile at training (2000 rows), s':<52} {reference_s:>10.2f}")
    print(f"{'scoring job without a profile, s (best)':<52} {min(plain):>10.2f}")
    for what, seconds in costs.items():
        print(f"{'  ' + what + ', s':<52} {seconds:>10.2f}")
    status, passed = verdict(overhead, "<=", LIMIT)
    name = "profile + tests / scoring job"
    print(f"{name:<52} {overhead:>10.3f}  {status} <= {LIMIT}")
    print(f"{'drift detected on the 30k in-distribution rows':<52} {detected!s:>10}  False")
    a_status, a_passed = verdict(alarms, "<=", ALARMS)
    print(f"{'false alarms, 20 random subsets of 1000 rows':<52} {alarms:>10}  {a_status} <= 1")
    passed = passed and a_passed and not detected
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if not passed:
        print("SHORT: drift monitoring over its limits", file=sys.stderr)
    return 0 if passed else 1


def test_chunks(manifest_path: Path):  # type: ignore[no-untyped-def]
    return (c for c in shard_chunks(manifest_path) if c[1].split == "test")


def monitoring_costs(predictor: Predictor, manifest_path: Path, reference, out: Path) -> dict:  # type: ignore[no-untyped-def]
    """What monitoring adds to a job, timed where it happens, part by part as the job does it:
    keeping the embeddings, the rows' features and their part file, and the tests over the job
    (with ``detected``)."""
    pin_job(out, ModelVersionRef("bench", "1", "none"), "bench")
    embed = features = 0.0
    for chunk_id, chunk in test_chunks(manifest_path):
        inputs = predictor.prepare(chunk.inputs, chunk.normalization)
        seconds, preds = embedding_cost(predictor, inputs)
        embed += seconds
        started = time.perf_counter()
        write_part_profile(out, chunk_id, row_features(predictor, inputs, preds, reference))
        features += time.perf_counter() - started
    started = time.perf_counter()
    drift = job_drift(out, reference)
    tests = time.perf_counter() - started
    return {
        "embeddings kept": embed,
        "row features + part files": features,
        "tests over the job": tests,
        "detected": drift.detected,
    }


def embedding_cost(predictor: Predictor, inputs: torch.Tensor) -> tuple[float, Predictions]:
    """A prediction keeping the embeddings, as ``predict_normalized(embed=True)`` does, and the
    seconds the keeping took: timed inside the forward pass, from a hook just before the one
    that keeps them to one just after, plus joining them (a difference of two timed predictions
    is lost in the noise of a shared machine)."""
    head = [m.head for m in predictor.model.modules() if isinstance(m, RecurrentHead)][-1]
    clock = {"start": 0.0, "spent": 0.0}

    def start(*_: object) -> None:
        clock["start"] = time.perf_counter()

    def stop(*_: object) -> None:
        clock["spent"] += time.perf_counter() - clock["start"]

    first = head.register_forward_pre_hook(start, prepend=True)
    with penultimate(predictor.model) as kept:
        last = head.register_forward_pre_hook(stop)
        try:
            preds = predictor.predict_normalized(inputs, 256)
        finally:
            first.remove()
            last.remove()
    started = time.perf_counter()
    preds.embeddings = torch.cat(kept).numpy()
    return clock["spent"] + time.perf_counter() - started, preds


def model(work: Path, manifest_path: Path, device: str) -> Predictor:
    """The default pipeline's CRNN, randomly initialized, with the shard set's statistics."""
    manifest = load_manifest(manifest_path)
    cfg = ModelConfig(architecture="crnn", head="ctc")
    kwargs = model_kwargs(cfg, manifest.features)
    meta = checkpoint_meta(manifest, cfg.architecture, kwargs)
    torch.manual_seed(0)
    net = create_model("crnn", tuple(manifest.input_shape), meta.model.num_outputs, **kwargs)
    save_checkpoint(work / "model.pt", net, meta)
    return Predictor(load_checkpoint(work / "model.pt"), device=device)


def false_alarms(reference, out: Path, subsets: int = 20, rows: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """Alarms over ``subsets`` random subsets of a job's in-distribution rows."""
    table = pa.concat_tables([pq.read_table(p) for p in sorted((out / PROFILE_DIR).glob("*"))])
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    rng = np.random.default_rng(0)
    alarms = 0
    for seed in range(subsets):
        picked = rng.choice(table.num_rows, rows, replace=False)
        alarms += compare(reference, {k: v[picked] for k, v in columns.items()}, seed).detected
    return int(alarms)


if __name__ == "__main__":
    raise SystemExit(main())
