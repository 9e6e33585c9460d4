"""How fast the command line answers: a mistyped model name, and the time to the first epoch of
`crnn run` on a small pipeline whose shards are already built (what is left is start-up and
orchestration: imports, the local Prefect server, the MLflow store, the flow's first tasks), on
Prefect's temporary server and on a `crnn server` kept running between commands.

    python bench/startup_bench.py [--python PATH] [--runs 3]

``--python`` runs another install's `crnn` (e.g. an older checkout's .venv/bin/python), for a
before / after figure on the same machine. Limit: a mistyped model name, an unset data.path and an
empty data folder each fail in under 2 s;
exits 1 when it does not, and says what bounds it. A local store answers it without MLflow;
importing the MLflow client, which a store it cannot read directly needs, is shown beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from flows.runtime.server_process import free_port

TYPO_LIMIT_S = 2.0
PIPELINE = {
    "data": {
        "source": "digit_strings",
        "lines": {"train": 192, "val": 48, "test": 48},
        "min_digits": 3,
        "max_digits": 5,
        "max_gap": 2,
    },
    "preprocessing": {"augmentation": {"copies": 0}, "shard_rows": 128},
    "model": {"architecture": "crnn_small", "pool": [[2, 2], [2, 2], [2, 1]]},
    "training": {"epochs": 1, "batch_size": 32, "device": "cpu", "loader": {"workers": 0}},
    "evaluation": {"sample_predictions": 0},
    "registry": {"first_champion_margin": None},
    "tracking": {"system_metrics_interval": None},
}
FIRST_EPOCH = re.compile(r"epoch 1/1\s+train_loss")


def crnn(python: str, config: Path, args: list[str], env: dict[str, str]) -> list[str]:
    return [python, "-m", "crnn.cli", "--config", str(config), *args]


def seconds_to(command: list[str], env: dict[str, str], pattern: re.Pattern[str] | None) -> float:
    """Seconds until ``pattern`` shows on the output (None: until the command exits). Run in
    the workspace's folder: a `crnn` package in the caller's folder must not shadow the
    install being measured."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=env["CRNN_WORKSPACE"].rsplit("/", 1)[0],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    text, at = "", None
    for raw in iter(proc.stdout.readline, b""):
        text += raw.decode(errors="replace")
        if at is None and pattern is not None and pattern.search(text):
            at = time.perf_counter() - started
    proc.wait()
    if pattern is None:
        return time.perf_counter() - started
    if at is None:
        raise SystemExit(f"no {pattern.pattern!r} in the output of {command}:\n{text[-2000:]}")
    return at


def measure(python: str, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="crnn-startup-") as tmp:
        root = Path(tmp)
        config = root / "pipelines.yaml"
        mapping = {"version": 1, "workspace": "ws", "default_pipeline": "b"}
        (root / "empty").mkdir()
        pipelines = {
            "b": PIPELINE,
            "nopath": {**PIPELINE, "data": {"source": "line_images", "path": None}},
            "empty": {**PIPELINE, "data": {"source": "line_images", "path": str(root / "empty")}},
        }
        config.write_text(yaml.safe_dump({**mapping, "pipelines": pipelines}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
        env["CRNN_WORKSPACE"] = str(root / "ws")
        run = crnn(python, config, ["run"], env)
        seconds_to(run, env, FIRST_EPOCH)  # warm: shards, the local stores, the OS caches
        first = [seconds_to(run, env, FIRST_EPOCH) for _ in range(runs)]
        server = crnn(python, config, ["server"], env)
        seconds_to([*server, "start", "--port", str(free_port())], env, None)
        try:  # the same runs on a local Prefect server kept between commands (`crnn server`)
            served = [seconds_to(run, env, FIRST_EPOCH) for _ in range(runs)]
        finally:
            seconds_to([*server, "stop"], env, None)
        typo = crnn(python, config, ["score", "crnn-bb@champion", "--out", str(root / "o")], env)
        typos = [seconds_to(typo, env, None) for _ in range(runs)]
        unset = [seconds_to(crnn(python, config, ["run", "nopath"], env), env, None)]
        empty = [seconds_to(crnn(python, config, ["run", "empty"], env), env, None)]
    return {
        "unset_path_s": statistics.median(unset),
        "empty_folder_s": statistics.median(empty),
        "first_epoch_s": statistics.median(first),
        "first_epoch_with_server_s": statistics.median(served),
        "typo_s": statistics.median(typos),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the install to measure")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "startup.json"))
    args = parser.parse_args()
    figures = measure(args.python, args.runs)
    probe = [
        args.python,
        "-c",
        "import time; t = time.perf_counter(); import mlflow.tracking; "
        "print(time.perf_counter() - t)",
    ]
    figures["mlflow_import_s"] = float(
        subprocess.run(probe, capture_output=True, text=True, check=True).stdout
    )
    print(f"{'figure':<40} {'seconds':>8}")
    print(f"{'crnn run: to the end of epoch 1 (cached)':<40} {figures['first_epoch_s']:>8.2f}")
    print(f"{'  with `crnn server` running':<40} {figures['first_epoch_with_server_s']:>8.2f}")
    print(
        f"{'crnn score: a mistyped model name':<40} {figures['typo_s']:>8.2f}"
        f"   (limit {TYPO_LIMIT_S:.1f})"
    )
    print(f"{'  (importing the MLflow client alone)':<40} {figures['mlflow_import_s']:>8.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"python": args.python, **figures}, indent=2) + "\n")
    for key, what in (("unset_path_s", "unset data.path"), ("empty_folder_s", "empty data.path")):
        print(f"{'crnn run: an ' + what:<40} {figures[key]:>8.2f}   (limit {TYPO_LIMIT_S:.1f})")
    slow = [k for k in ("unset_path_s", "empty_folder_s") if figures[k] > TYPO_LIMIT_S]
    if slow:
        print(f"SHORT: {', '.join(slow)} over {TYPO_LIMIT_S} s; bounded by the interpreter's start")
        return 1
    if figures["typo_s"] > TYPO_LIMIT_S:
        print(
            f"SHORT: a mistyped model name took {figures['typo_s']:.2f} s > {TYPO_LIMIT_S} s; "
            "bounded by the interpreter's start and the pipelines file's validation (a local "
            f"store), or by importing the MLflow client ({figures['mlflow_import_s']:.2f} s)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
