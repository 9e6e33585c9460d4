"""The training engine against its baselines and limits, measured side by side in one run.

    R1  our loader samples/s / a plain per-sample torch Dataset over the same shards   (>= 20)
    R2  our loader bytes/s   / the raw pyarrow read of the same columns (the ceiling)  (>= 0.8)
    R3  our training step    / a bare reference loop: same model, precision, batch size,
                               data already in memory, no logging, no Prefect          (>= 0.95)
    R4  tracking + orchestration time / training time of a standard run (the default
        pipeline through the Prefect flow into MLflow, in a fresh process as `crnn run`;
        overhead = flow wall time - preprocessing, training and evaluation compute)     (<= 0.02)

With ``--device cuda`` it adds: samples/s, achieved TFLOP/s of the model / a bf16 matmul peak
measured in the same run, host->device copy / a pinned-memory copy probe, and the share of step
time spent waiting on the loader. Reference workload: a CRNN sized like Shi et al. 2015
(`crnn_shi2015`: 32-pixel-high lines, 7 convs 64..512, 2 BiLSTM of 256, CTC) on digit strings;
also the default pipeline's model. Everything but R4 needs only torch, numpy, pyarrow and
scikit-learn (a bare GPU image); R4 is skipped where Prefect or MLflow is missing.

    python bench/train_bench.py [--device cpu|cuda] [--rows 4096] [--skip-r4]
                                [--out bench/results/train.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from crnn.config import DigitStringsData, ModelConfig, PreprocessingConfig, TrainingConfig
from crnn.data.loader import INPUT_COLUMN, ShardLoader, load_manifest
from crnn.data.preprocess import preprocess
from crnn.engine.callbacks import TimedCallbacks
from crnn.engine.checkpoint import checkpoint_meta
from crnn.engine.train import Trainer, run_epoch
from crnn.models import create_model, model_kwargs
from crnn.tasks import TargetSpec, task_for
from crnn.tasks.sequence import SequenceTask
from crnn.types.batches import Batch

SEQUENCE_SPEC = TargetSpec(kind="sequence", charset="0123456789")

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/verdict.py, however run
from verdict import verdict  # noqa: E402

LIMITS = {"R1": (">=", 20.0), "R2": (">=", 0.8), "R3": (">=", 0.95), "R4": ("<=", 0.02)}
COLUMNS = [INPUT_COLUMN, "target", "length"]

# Shi et al. 2015 on digit strings: 32-pixel-high lines (8x8 digits x3, 4-pixel margins); and the
# default pipeline's lines (native 8x8 digits: 12 pixels high)
LINES = {
    "shi2015": {"digit_scale": 3, "margin": 4, "min_digits": 3, "max_digits": 8, "max_gap": 3},
    "default": {"digit_scale": 1, "margin": 2, "min_digits": 3, "max_digits": 8, "max_gap": 3},
}
MODELS = {
    "shi2015": ModelConfig(architecture="crnn_shi2015", head="ctc"),
    "default": ModelConfig(
        architecture="crnn",
        head="ctc",
        conv_channels=(32, 64, 128),
        pool=((2, 2), (2, 2), (2, 1)),
        rnn_hidden=128,
        rnn_layers=2,
    ),
}


def best_of(fn: Callable[[], float], repeats: int) -> float:
    """The best (highest) of several throughput measurements: the least disturbed one."""
    return max(fn() for _ in range(repeats))


# --- R1 / R2: the loader ----------------------------------------------------------------------


class PerSampleDataset(Dataset):
    """The plain way: a map-style Dataset returning one decoded sample per __getitem__."""

    def __init__(self, paths: list[Path], shape: tuple[int, ...]) -> None:
        self.table = pa.concat_tables(pq.read_table(p, columns=COLUMNS) for p in paths)
        self.shape = shape

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.table.column(INPUT_COLUMN)[i].as_py()
        x = torch.from_numpy(np.frombuffer(raw, dtype=np.float32).reshape(self.shape).copy())
        return x, torch.tensor(self.table.column("target")[i].as_py(), dtype=torch.long)


def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    xs, ys = zip(*samples, strict=True)
    lengths = torch.tensor([len(y) for y in ys])
    return torch.stack(xs), nn.utils.rnn.pad_sequence(list(ys), batch_first=True), lengths


def loader_figures(manifest: Path, batch_size: int, workers: int, repeats: int) -> dict:
    m = load_manifest(manifest)
    paths = m.shard_paths(manifest.parent, "train")
    shape = tuple(m.input_shape)
    rows = m.splits["train"]["rows"]

    maps = [pa.memory_map(str(p)) for p in paths]

    def raw_read() -> float:
        """The faster of a plain read and a read of kept memory maps; either way the column
        chunks are decoded into this process's memory."""
        started = time.perf_counter()
        n = sum(pq.read_table(p, columns=COLUMNS).num_rows for p in paths)
        plain = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for m in maps:
            m.seek(0)
        n = sum(pq.read_table(m, columns=COLUMNS).num_rows for m in maps)
        return max(plain, n / (time.perf_counter() - started))

    raw_bytes_per_row = (
        pa.concat_tables(pq.read_table(p, columns=COLUMNS) for p in paths).nbytes / rows
    )

    def ours(w: int) -> Callable[[], float]:
        loader = ShardLoader(manifest, "train", batch_size, shuffle=True, workers=w)
        epochs = iter(range(10_000))

        def one_epoch() -> float:
            started = time.perf_counter()
            n = sum(len(b) for b in loader.batches(next(epochs)))
            return n / (time.perf_counter() - started)

        one_epoch()  # starts the workers
        return one_epoch

    dataset = PerSampleDataset(paths, shape)  # its table is read up front, not timed

    def per_sample() -> float:
        dl = DataLoader(dataset, batch_size, shuffle=True, collate_fn=collate, num_workers=0)
        started = time.perf_counter()
        n = sum(len(x) for x, _, _ in dl)
        return n / (time.perf_counter() - started)

    ours0 = best_of(ours(0), repeats)
    oursw = best_of(ours(workers), repeats) if workers else ours0
    baseline = best_of(per_sample, repeats)
    ceiling = best_of(raw_read, repeats)
    one, two = copy_probe(int(raw_bytes_per_row * rows), repeats)
    # a shuffling loader moves every byte twice (decode, then the shuffle into batches) where the
    # raw read moves it once; memory bandwidth caps how far the two passes can overlap
    r2_bound = min(1.0, one / min(2 * one, two))
    return {
        "rows": rows,
        "row_bytes": raw_bytes_per_row,
        "ours_samples_per_s": ours0,
        f"ours_{workers}_workers_samples_per_s": oursw,
        "per_sample_dataset_samples_per_s": baseline,
        "raw_pyarrow_read_samples_per_s": ceiling,
        "R1": ours0 / baseline,
        "R2": max(ours0, oursw) / ceiling,
        "R2_in_process": ours0 / ceiling,
        "copy_one_s": one,
        "copy_two_concurrent_s": two,
        "R2_bound_two_passes": r2_bound,
        "R1_bound": r2_bound * ceiling / baseline,
    }


def copy_probe(nbytes: int, repeats: int) -> tuple[float, float]:
    """Seconds for one memory copy of ``nbytes``, and for two such copies on two threads at once
    (numpy releases the GIL): how much a second pass over the same bytes can overlap."""
    src = [np.ones(nbytes // 4, np.float32) for _ in range(2)]
    dst = [np.empty_like(a) for a in src]
    for a, b in zip(src, dst, strict=True):
        np.copyto(b, a)  # fault the pages in

    def one() -> float:
        started = time.perf_counter()
        np.copyto(dst[0], src[0])
        return 1 / (time.perf_counter() - started)

    def two() -> float:
        pairs = zip(src, dst, strict=True)
        threads = [threading.Thread(target=np.copyto, args=(b, a)) for a, b in pairs]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 1 / (time.perf_counter() - started)

    return 1 / best_of(one, repeats), 1 / best_of(two, repeats)


# --- R3: one training step ----------------------------------------------------------------------


def bare_loop(
    model: nn.Module,
    batches: list[Batch],
    cfg: TrainingConfig,
    trainer: Trainer,
) -> Callable[[], float]:
    """What a person writes by hand: forward, CTC, backward, clip, step. Same optimizer, schedule,
    precision and memory format as the engine; batches already on the device."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=10_000)
    on_device = [b.to(trainer.device, trainer.memory_format) for b in batches]

    def run() -> float:
        model.train()
        sync(trainer.device)
        started = time.perf_counter()
        for b in on_device:
            with trainer.autocast():
                out = model(b.inputs)
            log_probs = out.float().log_softmax(-1).transpose(0, 1)
            lengths = torch.full((len(b),), out.shape[1], dtype=torch.long, device=out.device)
            loss = F.ctc_loss(log_probs, b.targets, lengths, b.target_lengths, zero_infinity=True)
            opt.zero_grad(set_to_none=True)
            trainer.scaler.scale(loss).backward()
            trainer.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            trainer.scaler.step(opt)
            trainer.scaler.update()
            sched.step()
        sync(trainer.device)
        return sum(len(b) for b in on_device) / (time.perf_counter() - started)

    return run


def engine_epoch(trainer: Trainer, loader: ShardLoader) -> Callable[[], float]:
    """The engine's own loop (crnn.engine.train.run_epoch) over the streaming loader."""
    epochs = iter(range(1, 10_000))

    def run() -> float:
        trainer.loop.epoch, trainer.loop.step = next(epochs), 0
        sync(trainer.device)
        started = time.perf_counter()
        waited = run_epoch(trainer, loader, task_for(loader.task.spec), TimedCallbacks(()))
        sync(trainer.device)
        seconds = time.perf_counter() - started
        run.wait_share = waited / seconds  # type: ignore[attr-defined]
        return loader.per_rank / seconds

    return run


def step_figures(
    manifest: Path, model_name: str, device: str, batch_size: int, steps: int, repeats: int
) -> dict:
    m = load_manifest(manifest)
    model_cfg = MODELS[model_name]
    shape, classes = tuple(m.input_shape), m.target.num_outputs
    kwargs = model_kwargs(model_cfg, m.features)
    cfg = TrainingConfig(device=device, batch_size=batch_size, log_every_steps=10_000)
    rows = steps * batch_size
    loader = ShardLoader(
        manifest,
        "train",
        batch_size,
        shuffle=True,
        workers=cfg.loader.workers if device == "cuda" else 0,
        pin_memory=device == "cuda",
        world_size=max(1, m.splits["train"]["rows"] // rows),  # a `steps`-batch share
    )
    torch.manual_seed(0)
    ours_model = create_model(model_cfg.architecture, shape, classes, **kwargs)
    torch.manual_seed(0)
    bare_model = create_model(model_cfg.architecture, shape, classes, **kwargs)
    meta = checkpoint_meta(m, model_cfg.architecture, kwargs)
    trainer = Trainer(ours_model, cfg, len(loader), Path(tempfile.mkdtemp()), meta)
    bare_trainer = Trainer(bare_model, cfg, len(loader), Path(tempfile.mkdtemp()), meta)
    batches = list(loader.batches(0))
    bare = bare_loop(bare_model, batches, cfg, bare_trainer)
    ours = engine_epoch(trainer, loader)
    bare(), ours()  # warm-up: allocator, cuDNN autotuning, workers
    bare_runs, our_runs, waits = [], [], []
    for _ in range(repeats):  # interleaved, so drift hits both alike
        bare_runs.append(bare())
        our_runs.append(ours())
        waits.append(ours.wait_share)  # type: ignore[attr-defined]
    params = sum(p.numel() for p in ours_model.parameters())
    out = {
        "model": model_cfg.architecture,
        "parameters": params,
        "input_shape": list(shape),
        "batch_size": batch_size,
        "steps": len(batches),
        "setup": trainer.setup,
        "bare_samples_per_s": max(bare_runs),
        "ours_samples_per_s": max(our_runs),
        "R3": max(our_runs) / max(bare_runs),
        "R3_median": statistics.median(our_runs) / statistics.median(bare_runs),
        "loader_wait_share": min(waits),
    }
    if device == "cuda":
        out.update(cuda_figures(ours_model, trainer, batches[0], max(our_runs)))
    loader.close()
    return out


def loader_rows(
    manifest: Path, lines: str, args: argparse.Namespace, report: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """R1 and R2 with their bounds on one shard set; the figures go into ``report``."""
    shape = load_manifest(manifest).input_shape
    lf = loader_figures(manifest, 64, workers=2, repeats=args.repeats)
    report[f"loader_{lines}"] = lf
    what = f"{lf['rows']} rows of {'x'.join(map(str, shape))}"
    return [
        (
            f"R1 loader / per-sample Dataset, {what}",
            f"{lf['R1']:.1f}",
            check("R1", lf["R1"], lf["R1_bound"]),
        ),
        (
            f"R2 loader / raw pyarrow read, {what}",
            f"{lf['R2']:.2f}",
            check("R2", lf["R2"], lf["R2_bound_two_passes"]),
        ),
        (
            "   bound on R2: 2 passes / memory bandwidth",
            f"{lf['R2_bound_two_passes']:.2f}",
            f"2 copies at once: {2 * lf['copy_one_s'] / lf['copy_two_concurrent_s']:.2f}x",
        ),
        ("   bound on R1: R2 bound x raw read / Dataset", f"{lf['R1_bound']:.1f}", ""),
    ]


def step_rows(sf: dict[str, Any], cuda: bool) -> list[tuple[str, str, str]]:
    """The table's rows for one model at one batch size."""
    what = f"{sf['model']}, batch {sf['batch_size']}"
    rows = [
        (f"R3 engine / bare loop, {what}", f"{sf['R3']:.3f}", check("R3", sf["R3"])),
        (f"   loader wait share, {what}", f"{sf['loader_wait_share']:.3f}", "< 0.05"),
    ]
    if cuda:
        rows += [
            (f"   samples/s, {what}", f"{sf['ours_samples_per_s']:.0f}", ""),
            (
                f"   TFLOP/s / bf16 matmul peak, {what}",
                f"{sf['mfu']:.3f}",
                f"{sf['achieved_tflops']:.1f} / {sf['bf16_matmul_peak_tflops']:.0f}",
            ),
            (f"   H2D copy / pinned probe, {what}", f"{sf['h2d_ratio']:.2f}", ""),
        ]
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- CUDA only ----------------------------------------------------------------------------------


def cuda_figures(
    model: nn.Module, trainer: Trainer, batch: Batch, samples_per_s: float
) -> dict[str, float]:
    """Achieved TFLOP/s against a bf16 matmul peak, and host->device copies against a pinned probe,
    all measured here."""
    from torch.utils.flop_counter import FlopCounterMode

    dev = trainer.device
    b = batch.to(dev, trainer.memory_format)
    counter = FlopCounterMode(display=False)
    with counter, trainer.autocast():
        loss, _ = SequenceTask(SEQUENCE_SPEC).loss(model(b.inputs), b)
        loss.backward()
    flops_per_sample = counter.get_total_flops() / len(batch)
    achieved = flops_per_sample * samples_per_s / 1e12

    n = 8192
    x = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    y = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        x @ y
    sync(dev)
    started, reps = time.perf_counter(), 20
    for _ in range(reps):
        x @ y
    sync(dev)
    peak = 2 * n**3 * reps / (time.perf_counter() - started) / 1e12

    def copy_rate(src: torch.Tensor) -> float:
        for _ in range(3):
            src.to(dev, non_blocking=True)
        sync(dev)
        started = time.perf_counter()
        for _ in range(20):
            src.to(dev, non_blocking=True)
        sync(dev)
        return 20 * src.numel() * src.element_size() / (time.perf_counter() - started) / 1e9

    ours_gbs = copy_rate(
        batch.inputs.pin_memory() if not batch.inputs.is_pinned() else batch.inputs
    )
    probe = copy_rate(torch.empty(64 * 2**20, dtype=torch.uint8).pin_memory())
    return {
        "cuda_device": torch.cuda.get_device_name(dev),
        "flops_per_sample": flops_per_sample,
        "achieved_tflops": achieved,
        "bf16_matmul_peak_tflops": peak,
        "mfu": achieved / peak,
        "h2d_batch_gb_s": ours_gbs,
        "h2d_pinned_probe_gb_s": probe,
        "h2d_ratio": ours_gbs / probe,
    }


# --- R4: tracking + orchestration of a standard run --------------------------------------------


def standard_run_in_own_process(workdir: Path) -> dict[str, Any]:
    """:func:`standard_run_figures` in a fresh interpreter, as `crnn run` starts one: what this
    process did before (R1-R3) does not change the run's first-call costs."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "standard-run.json"
    cmd = [sys.executable, __file__, "--standard-run-only", str(workdir), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the standard run failed:\n{proc.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def standard_run_figures(workdir: Path) -> dict[str, Any]:
    """The default pipeline through the retrain flow (Prefect + MLflow), shards built beforehand;
    overhead = flow wall time - compute of every stage (preprocess, train, evaluate)."""
    import yaml

    from crnn.config import load_pipeline
    from crnn.data.preprocess import preprocess as build
    from flows.runtime.local_prefect import (
        local_flow_runs,
        prepare_local_prefect,
        quiet_user_errors,
    )

    mapping = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    mapping["workspace"] = str(workdir / "ws")
    config = workdir / "pipelines.yaml"
    config.write_text(yaml.safe_dump(mapping, sort_keys=False))
    prepare_local_prefect(workdir / "ws")  # before Prefect is imported
    quiet_user_errors()
    from flows.retrain import retrain

    _, cfg = load_pipeline(config)
    build(cfg.data, cfg.preprocessing, workdir / "ws" / "shards")  # not part of the ratio
    started = time.perf_counter()
    warm_flow()
    server_start = time.perf_counter() - started
    # a standard run is a scheduled retraining into an existing store: create the SQLite store
    # (its schema migrations are a one-off) before timing
    from crnn.tracking import open_tracking

    open_tracking(cfg.tracking, workdir / "ws")
    started = time.perf_counter()
    with local_flow_runs():  # as `crnn run` runs it
        summary = retrain(config_path=str(config), progress=False)
    wall = time.perf_counter() - started
    t = summary["timings"]
    # The flow logs the model beside evaluation; on a CPU-only machine the two share the cores,
    # so the evaluation measured in the flow can include time lost to the model logging. Counted
    # as compute is the same evaluation run again here, alone: the overlap cannot hide overhead.
    from crnn.inference.evaluate import evaluate_checkpoint

    started = time.perf_counter()
    evaluate_checkpoint(
        Path(summary["training"]["checkpoint"]),
        Path(summary["shards"]["manifest"]),
        workdir / "evaluation-alone",
        cfg.evaluation,
    )
    evaluate_alone = time.perf_counter() - started
    compute = t["preprocess"] + t["train"] + min(t["evaluate"], evaluate_alone)
    overhead = wall - compute
    return {
        "pipeline": summary["pipeline"],
        "flow_wall_s": wall,
        "prefect_server_start_s": server_start,
        **{f"{k}_s": v for k, v in t.items()},
        "evaluate_alone_s": evaluate_alone,
        "tracking_and_orchestration_s": overhead,
        "R4": overhead / t["train"],
        "test_sequence_accuracy": summary["metrics"].get("test_sequence_accuracy"),
    }


def warm_flow() -> None:
    """Start the Prefect server (a one-off per process or a long-lived service in production)."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def noop() -> int:
        return 0

    noop()


# --- report ---------------------------------------------------------------------------------


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def check(name: str, value: float, bound: float | None = None) -> str:
    op, limit = LIMITS[name]
    status, _ = verdict(value, op, limit, bound)
    return f"{status} ({op} {limit:g})"


def build_shards(workdir: Path, lines: str, rows: int) -> Path:
    data = DigitStringsData(lines={"train": rows, "val": 64, "test": 64}, **LINES[lines])
    prep = PreprocessingConfig(augmentation={"copies": 0}, shard_rows=2048)
    return preprocess(data, prep, workdir / f"shards-{lines}").manifest_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, default=4096, help="training lines for R1-R3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-r4", action="store_true", help="no standard run (bare images)")
    parser.add_argument("--skip-loader", action="store_true", help="no R1 / R2 (loader figures)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, help="training steps per R3 measurement")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="R3 at each (default: 32 on CPU, 256 on CUDA)"
    )
    parser.add_argument("--out", default="bench/results/train.json")
    parser.add_argument(
        "--report-only", action="store_true", help="print the verdicts, exit 0 (plumbing runs)"
    )
    parser.add_argument("--standard-run-only", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.standard_run_only:  # the child process of standard_run_in_own_process
        figures = standard_run_figures(Path(args.standard_run_only))
        Path(args.out).write_text(json.dumps(figures, default=str))
        return 0
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"device": args.device, "torch": torch.__version__}
    rows_out: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="crnn-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_loader:
            for lines, rows in (("shi2015", args.rows), ("default", 4 * args.rows)):
                rows_out += loader_rows(build_shards(work, lines, rows), lines, args, report)
        manifest = build_shards(work, "shi2015", args.rows)  # a cache hit if built above
        steps = args.steps or {"cpu": 12, "cuda": 50}[args.device]
        for name in args.models:
            for batch in args.batch_sizes or [{"cpu": 32, "cuda": 256}[args.device]]:
                sf = step_figures(manifest, name, args.device, batch, steps, args.repeats)
                report[f"step_{name}_b{batch}"] = sf
                rows_out += step_rows(sf, cuda)
        have_edges = all(available(m) for m in ("prefect", "mlflow"))
        if args.skip_r4 or not have_edges:
            rows_out.append(("R4 tracking+orchestration / training", "-", "skipped"))
        else:
            sr = standard_run_in_own_process(work / "standard-run")
            report["standard_run"] = sr
            rows_out.append(
                ("R4 tracking+orchestration / training", f"{sr['R4']:.4f}", check("R4", sr["R4"]))
            )
    width = max(len(r[0]) for r in rows_out)
    print(f"{'figure':<{width}}  {'value':>8}  limit")
    for name, value, status in rows_out:
        print(f"{name:<{width}}  {value:>8}  {status}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "limits": LIMITS}, indent=2, default=str))
    print(f"written: {out}", file=sys.stderr)
    short = [name.strip() for name, _, status in rows_out if status.startswith("SHORT")]
    if short:
        print(f"SHORT, and no bound measured here explains it: {'; '.join(short)}", file=sys.stderr)
    return 0 if not short or args.report_only else 1


if __name__ == "__main__":
    sys.exit(main())
