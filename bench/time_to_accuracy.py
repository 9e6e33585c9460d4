"""Seconds of training until the default pipeline's model reaches a test accuracy target.

The pipeline (default: pipelines.yaml's default) is preprocessed, then trained from its shards as
`crnn run` trains it; after every epoch the epoch's checkpoint scores the test split. The figure
is training time (setup included, this watcher's own scoring excluded) up to the first epoch at or
above the target. Needs only the core (torch, numpy, pandas, pyarrow, scikit-learn, pydantic,
pyyaml): no Prefect, no MLflow. Exits 1 when the target is not reached.

    python bench/time_to_accuracy.py [--device cuda] [--target 0.95] [--pipeline NAME]
                                     [--set KEY=VALUE ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from crnn.config import load_pipeline
from crnn.data.loader import load_split
from crnn.data.preprocess import preprocess
from crnn.engine.callbacks import TrainCallback
from crnn.engine.train import train_on_shards
from crnn.inference.predictor import Predictor
from crnn.types.batches import SplitData

REPO = Path(__file__).resolve().parents[1]


def test_accuracy(predictor: Predictor, test: SplitData) -> float:
    """The share of exactly right test predictions (sequence accuracy or accuracy)."""
    task = predictor.task
    errors = task.errors(task.truths(test), predictor.predict_normalized(test.inputs).outputs)
    return float((errors == 0).mean())


class TestAccuracyWatch(TrainCallback):
    """Scores each epoch's last.pt on the test split; keeps its own time out of the figure."""

    def __init__(self, manifest_path: Path, checkpoint_dir: Path, device: str) -> None:
        self.test = load_split(manifest_path, "test")
        self.last = checkpoint_dir / "last.pt"
        self.device = device
        self.started = time.perf_counter()
        self.own_seconds = 0.0
        self.points: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        began = time.perf_counter()
        accuracy = test_accuracy(Predictor.from_checkpoint(self.last, self.device), self.test)
        self.points.append(
            {
                "epoch": epoch,
                "train_seconds": began - self.started - self.own_seconds,
                "test_accuracy": accuracy,
                "val_loss": metrics["val_loss"],
            }
        )
        self.own_seconds += time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--config", type=Path, default=REPO / "pipelines.yaml")
    parser.add_argument("--pipeline")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/time_to_accuracy.json")
    args = parser.parse_args()
    overrides = [*args.overrides, f"training.device={args.device}"]
    _, cfg = load_pipeline(args.config, args.pipeline, overrides)
    with tempfile.TemporaryDirectory(prefix="crnn-tta-") as tmp:
        began = time.perf_counter()
        shards = preprocess(cfg.data, cfg.preprocessing, Path(tmp) / "shards")
        preprocess_seconds = time.perf_counter() - began
        watch = TestAccuracyWatch(shards.manifest_path, Path(tmp) / "ckpt", args.device)
        result = train_on_shards(
            shards.manifest_path, cfg.model, cfg.training, Path(tmp) / "ckpt", [watch]
        )
    reached = [p for p in watch.points if p["test_accuracy"] >= args.target]
    report = {
        "pipeline": cfg.name,
        "device": result.setup["device"],
        "setup": result.setup,
        "target": args.target,
        "preprocess_seconds": preprocess_seconds,
        "seconds_to_target": reached[0]["train_seconds"] if reached else None,
        "epoch_reached": reached[0]["epoch"] if reached else None,
        "final_test_accuracy": watch.points[-1]["test_accuracy"],
        "train_seconds": result.seconds - watch.own_seconds,
        "epochs": watch.points,
    }
    print(f"{'epoch':>5}  {'train s':>8}  {'test accuracy':>13}")
    for p in watch.points:
        print(f"{p['epoch']:>5.0f}  {p['train_seconds']:>8.1f}  {p['test_accuracy']:>13.4f}")
    status = "ok" if reached else "SHORT"
    seconds = "-" if not reached else f"{reached[0]['train_seconds']:.1f}"
    print(f"{cfg.name} on {result.setup['device']}: {seconds} s to test accuracy >= {args.target}")
    print(f"  {status}: final {report['final_test_accuracy']:.4f} after {len(watch.points)} epochs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
