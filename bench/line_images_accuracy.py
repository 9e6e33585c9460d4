"""The shipped `text-lines` pipeline on line images as users lay them out, end to end.

Renders lines with Pillow (two fonts and sizes; lower-case letters, digits, punctuation) as
``NAME.png`` + ``NAME.gt.txt`` with no split given, runs `crnn run text-lines` at the shipped
defaults (only ``data.path`` set) in a fresh workspace, then loads
``models:/crnn-text-lines@champion`` in a fresh process and reads every test line from its file.
Limits (issue 27): test CER <= 0.03 on >= 300 test lines, the run within 600 s, and the pyfunc
agreeing with the evaluation on every test line. Exits 1 when a limit is missed, saying which.

Then the decoders, in the same run on the same model: greedy, a beam of 10, and the beam held to a
word list, on the test lines and on lines rendered from a 300-word vocabulary (the set a word list
fits, blurred and noisy so the model errs): CER and decoding time per line (the model's forward pass
once, outside the timing), the beam's cost as a multiple of greedy's.

    python bench/line_images_accuracy.py [--lines 3000] [--set KEY=VALUE ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the line renderer the tests use

from tests.lines import random_word, render_lines  # noqa: E402

LIMITS = {"test_cer": 0.03, "test_lines": 300, "run_seconds": 600.0, "agreement": 1.0}
BEAM = {"kind": "beam", "beam_width": 10}


def run_pipeline(data: Path, workspace: Path, overrides: list[str]) -> tuple[dict, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["CRNN_WORKSPACE"] = str(workspace)
    sets = [a for kv in [f"data.path={data}", *overrides] for a in ("--set", kv)]
    args = ["--config", str(REPO / "pipelines.yaml"), "run", "text-lines", *sets, "--json"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "crnn.cli", *args], capture_output=True, text=True, env=env
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"crnn run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(proc.stdout), seconds


def served_by_the_registry(summary: dict, paths: list[str]) -> list[str]:
    """The champion's predictions for ``paths``, from a fresh process."""
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({summary['mlflow']['tracking_uri']!r})\n"
        "m = mlflow.pyfunc.load_model('models:/crnn-text-lines@champion')\n"
        "paths = json.load(sys.stdin)\n"
        "print(json.dumps(list(m.predict(pd.DataFrame({'path': paths})))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(paths), capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"the pyfunc failed: {proc.stderr[-1500:]}")
    served: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return served


def decoder_figures(
    checkpoint: Path, sets: dict[str, tuple[list[str], list[str], list[str]]]
) -> dict:
    """CER and decoding milliseconds per line of each decoder on each set (paths, truths, and a
    word list: the beam is held to it where it is given)."""
    import torch

    from crnn.data.raw import raw_to_inputs
    from crnn.engine.checkpoint import load_checkpoint
    from crnn.inference.predictor import Predictor
    from crnn.metrics import sequence_metrics

    ckpt = load_checkpoint(checkpoint)
    figures: dict = {}
    for set_name, (paths, truths, words) in sets.items():
        decoders = {"greedy": {}, "beam": BEAM}
        if words:
            decoders["beam_lexicon"] = {**BEAM, "lexicon": words}
        reader = Predictor(ckpt, "cpu")
        with torch.inference_mode():  # the model's outputs once: only decoding is timed
            x = reader.prepare(raw_to_inputs(paths, reader.source, reader.features))
            out = torch.cat([reader.model(x[i : i + 256]) for i in range(0, len(x), 256)])
        for name, record in decoders.items():
            task = Predictor(ckpt, "cpu", record).task
            started = time.perf_counter()
            texts, _ = task.decode(out)
            ms = (time.perf_counter() - started) * 1000 / len(paths)
            cer = sequence_metrics(truths, texts)["cer"]
            figures[f"{set_name}/{name}"] = {"cer": round(cer, 4), "ms_per_line": round(ms, 3)}
        greedy_ms = max(figures[f"{set_name}/greedy"]["ms_per_line"], 1e-6)
        beam_ms = figures[f"{set_name}/beam"]["ms_per_line"]
        figures[f"{set_name}/beam_cost_x_greedy"] = round(beam_ms / greedy_ms, 1)
    return figures


def degrade(folder: Path) -> None:
    """Every line of ``folder`` blurred, shrunk and enlarged again, with pixel noise."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(1)
    for path in sorted(folder.glob("*.png")):
        image = Image.open(path).convert("L").filter(ImageFilter.GaussianBlur(1.3))
        small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
        pixels = np.asarray(small.resize(image.size, Image.Resampling.BILINEAR), np.float32)
        noisy = np.clip(pixels + rng.normal(0, 25, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/line_images.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "lines"
        render_lines(data, args.lines, seed=0)
        summary, seconds = run_pipeline(data, Path(tmp) / "ws", args.overrides)
        run_dir = Path(summary["workspace"]) / "runs" / summary["mlflow"]["run_id"]
        evaluated = pd.read_parquet(run_dir / "evaluation" / "test_predictions.parquet")
        test_paths = [str(data / i) for i in evaluated["sample_id"]]
        served = served_by_the_registry(summary, test_paths)
        vocabulary = sorted({random_word(random.Random(i)) for i in range(300)})
        friendly = Path(tmp) / "vocabulary_lines"
        truths = render_lines(friendly, 400, seed=1, vocabulary=vocabulary)
        degrade(friendly)  # blurred and noisy: the model errs, a word list can put it right
        sets = {
            "test": (test_paths, list(evaluated["truth"]), []),
            "vocabulary": ([str(p) for p in sorted(friendly.glob("*.png"))], truths, vocabulary),
        }
        decoding = decoder_figures(run_dir / "checkpoints" / "best.pt", sets)
    agree = sum(a == b for a, b in zip(served, evaluated["prediction"], strict=True))
    figures = {
        "test_cer": summary["metrics"]["test_cer"],
        "test_sequence_accuracy": summary["metrics"]["test_sequence_accuracy"],
        "test_lines": len(evaluated),
        "run_seconds": round(seconds, 1),
        "epochs": summary["training"].get("epochs_run", None),
        "agreement": agree / max(len(evaluated), 1),
        "cpu_threads": os.cpu_count(),
    }
    checks = {
        "test_cer": figures["test_cer"] <= LIMITS["test_cer"],
        "test_lines": figures["test_lines"] >= LIMITS["test_lines"],
        "run_seconds": figures["run_seconds"] <= LIMITS["run_seconds"],
        "agreement": figures["agreement"] >= LIMITS["agreement"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"figures": figures, "decoders": decoding, "limits": LIMITS, "ok": checks}
    args.out.write_text(json.dumps(result, indent=2))
    for name, ok in checks.items():
        mark = "ok" if ok else "SHORT"
        print(f"{name:14} {figures[name]!s:>10}  limit {LIMITS[name]!s:>6}  {mark}")
    for name, value in decoding.items():
        print(f"{name:28} {value}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
