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
import time
import uuid
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
    node_spec: Path | None = None,
) -> Any:
    """Train with ``train_cfg.devices`` processes under torchrun and return rank 0's TrainResult;
    with ``train_cfg.distributed``, this machine's share of ``nodes`` x ``procs_per_node`` ranks
    meeting at its c10d rendezvous, the other nodes joining through ``node_spec`` (a file on
    storage every node sees, removed when training ends: :func:`join`).

    ``tracking`` ({"tracking_uri", "experiment_id", "experiment_name", "run_id"}) makes rank 0
    log into that MLflow run.
    """
    several = train_cfg.distributed is not None
    with tempfile.TemporaryDirectory(prefix="crnn-ddp-") as tmp:
        # several machines: the spec and rank 0's result where every node reads and writes
        shared = checkpoint_dir.parent if several else Path(tmp)
        shared.mkdir(parents=True, exist_ok=True)
        spec = {
            "manifest": str(manifest_path),
            "model": model_cfg.model_dump(mode="json"),
            "training": train_cfg.model_dump(mode="json"),
            "checkpoint_dir": str(checkpoint_dir),
            "resume": resume,
            "tracking": tracking,
            "progress": progress,
            "result": str(shared / "ddp-result.json"),
            "rdzv_id": (tracking or {}).get("run_id") or uuid.uuid4().hex,
        }
        spec_path = shared / "ddp-spec.json"
        spec_path.write_text(json.dumps(spec))
        if several and node_spec is not None:  # where the other nodes look for it
            node_spec.parent.mkdir(parents=True, exist_ok=True)
            node_spec.write_text(json.dumps({"spec": str(spec_path)}))
        try:
            proc = _torchrun(spec, spec_path)
        finally:
            if several and node_spec is not None:
                node_spec.unlink(missing_ok=True)  # a node starting later waits for the next
        result_path = Path(spec["result"])
        if proc.returncode != 0 or not result_path.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"distributed training failed (exit {proc.returncode}):\n{tail}")
        raw = json.loads(result_path.read_text())
    raw["best_checkpoint"] = Path(raw["best_checkpoint"])
    raw["last_checkpoint"] = Path(raw["last_checkpoint"])
    return TrainResult(**raw)


def _torchrun(spec: dict[str, Any], spec_path: Path) -> subprocess.CompletedProcess[str]:
    """torchrun over ``spec``'s ranks on this machine: standalone, or this node's share of a
    c10d rendezvous (``training.distributed``)."""
    training = spec["training"]
    several = training.get("distributed")
    if several:
        where = [
            f"--nnodes={several['nodes']}",
            f"--nproc-per-node={several['procs_per_node']}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={several['rdzv_endpoint']}",
            f"--rdzv-id={spec['rdzv_id']}",
        ]
    else:
        where = ["--standalone", f"--nproc-per-node={training['devices']}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, "-m", "crnn.distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if training["device"] == "cpu":  # CPU training on a GPU machine: gloo, not NCCL
        env["CRNN_DDP_BACKEND"] = "gloo"
    parent = os.getpid()  # torchrun (and with it its ranks) dies with this process
    return subprocess.run(
        [*cmd, str(spec_path)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
    )


def join(node_spec: Path, wait_seconds: float = 600.0) -> int:
    """This machine's ranks of a training another node launched: wait for ``node_spec`` (written
    by that node's `crnn run` while it trains), then run torchrun with the same rendezvous.
    Returns torchrun's exit status; 3 when nothing was launched within ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while not node_spec.is_file():
        if time.monotonic() > deadline:
            print(f"{node_spec}: no training to join after {wait_seconds:.0f} s", file=sys.stderr)
            return 3
        time.sleep(0.5)
    spec_path = Path(json.loads(node_spec.read_text())["spec"])
    proc = _torchrun(json.loads(spec_path.read_text()), spec_path)
    if proc.returncode != 0:
        print("\n".join(proc.stderr.strip().splitlines()[-15:]), file=sys.stderr)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    from crnn.config import ModelConfig, TrainingConfig

    parser = argparse.ArgumentParser(description="one torchrun rank of `crnn run`")
    parser.add_argument("spec", type=Path, help="the spec a rank trains by")
    parser.add_argument("--join", action="store_true", help="spec: a node spec to join (join())")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for it")
    args = parser.parse_args(argv)
    if args.join:
        return join(args.spec, args.wait)
    spec = json.loads(args.spec.read_text())
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
