"""Multi-process training with torchrun: DistributedDataParallel, one process per GPU (gloo on CPU).

`crnn run` with ``training.devices > 1`` calls :func:`launch`, which starts
``torchrun --standalone --nproc-per-node N -m crnn.distributed ...``. For several machines, run the
same module under torchrun yourself with ``--nnodes`` and a rendezvous endpoint. Every rank trains
on its share of the shard stream; gradients are averaged by DDP; training metrics are summed across
ranks; rank 0 validates, logs and writes the checkpoints.

The rank helpers (who is main, collectives) are in :mod:`crnn.engine.ranks`, which the engine
imports; this module, the launcher and the rank entry point, imports the engine and is imported
by nothing in it. MLflow is imported (on rank 0) only when a run id is passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.distributed as torch_dist

from crnn.engine.callbacks import TrainCallback, TrainResult
from crnn.engine.ranks import init, is_main
from crnn.engine.train import train_on_shards
from crnn.lifetime import die_with_parent


def launch(
    manifest_path: Path,
    model_cfg: Any,
    train_cfg: Any,
    checkpoint_dir: Path,
    *,
    resume: bool = False,
    tracking: dict[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Train with ``train_cfg.devices`` processes under torchrun and return rank 0's TrainResult.

    ``tracking`` ({"tracking_uri", "experiment_id", "experiment_name", "run_id"}) makes rank 0
    log into that MLflow run.
    """
    with tempfile.TemporaryDirectory(prefix="crnn-ddp-") as tmp:
        spec = Path(tmp) / "spec.json"
        result_path = Path(tmp) / "result.json"
        spec.write_text(
            json.dumps(
                {
                    "manifest": str(manifest_path),
                    "model": model_cfg.model_dump(mode="json"),
                    "training": train_cfg.model_dump(mode="json"),
                    "checkpoint_dir": str(checkpoint_dir),
                    "resume": resume,
                    "tracking": tracking,
                    "progress": progress,
                    "result": str(result_path),
                }
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={train_cfg.devices}",
            "-m",
            "crnn.distributed",
            str(spec),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        if train_cfg.device == "cpu":  # CPU training on a GPU machine: gloo, not NCCL
            env["CRNN_DDP_BACKEND"] = "gloo"
        parent = os.getpid()  # torchrun (and with it its ranks) dies with this process
        proc = subprocess.run(
            cmd,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
        )
        if proc.returncode != 0 or not result_path.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"distributed training failed (exit {proc.returncode}):\n{tail}")
        raw = json.loads(result_path.read_text())
    raw["best_checkpoint"] = Path(raw["best_checkpoint"])
    raw["last_checkpoint"] = Path(raw["last_checkpoint"])
    return TrainResult(**raw)


def main(argv: list[str] | None = None) -> int:
    from crnn.config import ModelConfig, TrainingConfig

    parser = argparse.ArgumentParser(description="one torchrun rank of `crnn run`")
    parser.add_argument("spec", type=Path)
    spec = json.loads(parser.parse_args(argv).spec.read_text())
    init()
    try:
        callbacks: list[TrainCallback] = []
        if is_main() and spec.get("tracking"):
            from crnn.tracking.runs import TrackingContext  # only with a run
            from crnn.tracking.training_log import MlflowCallback

            t = spec["tracking"]
            ctx = TrackingContext(t["tracking_uri"], t["experiment_id"], t["experiment_name"])
            callbacks.append(MlflowCallback(ctx, t["run_id"], t.get("system_metrics_interval")))
        if is_main() and spec.get("progress"):
            from crnn.engine.progress import ConsoleProgress

            callbacks.append(ConsoleProgress())
        result = train_on_shards(
            Path(spec["manifest"]),
            ModelConfig.model_validate(spec["model"]),
            TrainingConfig.model_validate(spec["training"]),
            Path(spec["checkpoint_dir"]),
            callbacks,
            resume=spec["resume"],
        )
        if is_main():
            out = asdict(result)
            out["best_checkpoint"] = str(result.best_checkpoint)
            out["last_checkpoint"] = str(result.last_checkpoint)
            Path(spec["result"]).write_text(json.dumps(out))
    finally:
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
