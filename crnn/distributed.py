"""Multi-process training with torchrun: DistributedDataParallel, one process per GPU (gloo on CPU).

`crnn run` with ``training.devices > 1`` calls :func:`launch`, which starts
``torchrun --standalone --nproc-per-node N -m crnn.distributed ...``. For several machines, run the
same module under torchrun yourself with ``--nnodes`` and a rendezvous endpoint. Every rank trains
on its share of the shard stream; gradients are averaged by DDP; training metrics are summed across
ranks; rank 0 validates, logs and writes the checkpoints.

Outside torchrun every helper here is the single-process identity, so the engine has one code path.
Needs only torch: MLflow is imported (on rank 0) only when a run id is passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


def active() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    return torch_dist.get_rank() if active() else 0


def world_size() -> int:
    return torch_dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device | None:
    """This rank's GPU under torchrun (LOCAL_RANK); None outside it or on CPU."""
    if active() and torch_dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


def wrap(model: nn.Module, dev: torch.device) -> nn.Module:
    if not active():
        return model
    ids = [dev.index] if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (training loss sums, sample counts)."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device() or "cpu")
    torch_dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0, device=device())
    return box[0]


def barrier() -> None:
    if active():
        dev = device()
        index = dev.index if dev is not None else None
        torch_dist.barrier(device_ids=[index] if index is not None else None)


def init() -> None:
    """Join the process group torchrun set up (env://)."""
    cuda = torch.cuda.is_available() and os.environ.get("CRNN_DDP_BACKEND") != "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch_dist.init_process_group("nccl" if cuda else "gloo")


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
    from crnn.train import TrainResult

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
        proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not result_path.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"distributed training failed (exit {proc.returncode}):\n{tail}")
        raw = json.loads(result_path.read_text())
    raw["best_checkpoint"] = Path(raw["best_checkpoint"])
    raw["last_checkpoint"] = Path(raw["last_checkpoint"])
    return TrainResult(**raw)


def main(argv: list[str] | None = None) -> int:
    from crnn.config import ModelConfig, TrainingConfig
    from crnn.train import TrainCallback, train_on_shards

    parser = argparse.ArgumentParser(description="one torchrun rank of `crnn run`")
    parser.add_argument("spec", type=Path)
    spec = json.loads(parser.parse_args(argv).spec.read_text())
    init()
    try:
        callbacks: list[TrainCallback] = []
        if is_main() and spec.get("tracking"):
            from crnn.tracking.runs import MlflowCallback, TrackingContext

            t = spec["tracking"]
            ctx = TrackingContext(t["tracking_uri"], t["experiment_id"], t["experiment_name"])
            callbacks.append(MlflowCallback(ctx, t["run_id"], t.get("system_metrics_interval")))
        if is_main() and spec.get("progress"):
            from crnn.console import ConsoleProgress

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


def in_sync(model: nn.Module) -> bool:
    """Whether every rank holds the same weights (a float64 checksum, gathered)."""
    if not active():
        return True
    dev = device() or torch.device("cpu")
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().view(1)
    gathered = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world_size())]
    torch_dist.all_gather(gathered, local.to(dev))
    return all(torch.equal(g, gathered[0]) for g in gathered)


if __name__ == "__main__":
    sys.exit(main())
