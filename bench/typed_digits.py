"""Typed digits read by the default line model (issue 32 item 11): the shipped `digit-strings`
pipeline trained as shipped (a share of its lines typed in the fonts Pillow and matplotlib bundle,
DejaVu left out, `data.typed_fraction`) and, in the same run, with no typed lines (as before), each
read back on a rendered-font test set as a user has it: lines of 3-8 digits typed in DejaVu Sans
(a font neither model saw), dark on white PNG files of any size, read through
`crnn.inference.Predictor` from the file paths.
Also each model's sequence accuracy on the shipped test lines with none typed (handwritten only):
the typed lines must not cost the handwriting. Limits: the shipped model reads >= 0.8 of the typed
lines; its handwritten accuracy within 0.03 of the model without typed lines. Exits 1 when missed.

    python bench/typed_digits.py [--lines 300] [--font PATH] [--out FILE] [--skip-baseline]

``--skip-baseline`` trains only the shipped variant (for iterating; no verdict on the handwriting).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/verdict.py, however run
from verdict import verdict  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's fonts-dejavu-core
LIMIT_TYPED = 0.8
LIMIT_HANDWRITING_LOSS = 0.03


def render_test_set(folder: Path, n: int, font_path: str, seed: int = 0) -> list[str]:
    """``n`` PNG files of typed digit strings (a screenshot's crop: dark on white, a margin of
    a quarter of the size, sizes 20-48 px); returns their texts, file ``NNNN.png`` each."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    texts = []
    for i in range(n):
        text = "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(3, 9))))
        size = int(rng.integers(20, 49))
        face = ImageFont.truetype(font_path, size=size)
        left, top, right, bottom = face.getbbox(text)
        margin = size // 4
        image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
        ImageDraw.Draw(image).text((margin - left, margin - top), text, fill=0, font=face)
        image.save(folder / f"{i:04d}.png")
        texts.append(text)
    return texts


def train(workspace: Path, overrides: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["CRNN_WORKSPACE"] = str(workspace)
    sets = [a for kv in overrides for a in ("--set", kv)]
    args = ["--config", str(REPO / "pipelines.yaml"), "run", "digit-strings", *sets, "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "crnn.cli", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        sys.exit(f"crnn run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    summary: dict = json.loads(proc.stdout)
    return summary


def read_typed(summary: dict, paths: list[str], texts: list[str]) -> float:
    from crnn.inference.predictor import Predictor

    reader = Predictor.from_checkpoint(summary["training"]["checkpoint"], "cpu")
    read = reader.predict_input(paths).outputs
    return float(np.mean([r == t for r, t in zip(read, texts, strict=True)]))


def read_handwritten(summary: dict) -> float:
    """Sequence accuracy on the shipped pipeline's test lines with none typed: the lines the
    model without typed lines is tested on (no typed line draws on the stream then)."""
    from crnn.config import DigitStringsData
    from crnn.data.embedded import DigitStringsSource
    from crnn.inference.predictor import Predictor

    reader = Predictor.from_checkpoint(summary["training"]["checkpoint"], "cpu")
    cfg = DigitStringsData.model_validate({**reader.source, "typed_fraction": 0.0})
    right = total = 0
    for chunk in DigitStringsSource(cfg).chunks("test", 1000):
        read = reader.predict_raw(chunk.inputs).outputs
        right += sum(r == t for r, t in zip(read, chunk.texts or [], strict=True))
        total += len(read)
    return right / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--font", default=FONT)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/typed_digits.json")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="train only the shipped variant (iterating)"
    )
    args = parser.parse_args()
    if not Path(args.font).is_file():
        sys.exit(f"{args.font}: no such font; install fonts-dejavu-core or pass --font PATH")
    figures: dict = {"font": Path(args.font).name, "typed_lines": args.lines}
    with tempfile.TemporaryDirectory() as tmp:
        texts = render_test_set(Path(tmp) / "typed", args.lines, args.font)
        paths = [str(Path(tmp) / "typed" / f"{i:04d}.png") for i in range(args.lines)]
        variants = [("shipped", []), ("no_typed", ["data.typed_fraction=0"])]
        for name, overrides in variants[: 1 if args.skip_baseline else 2]:
            summary = train(Path(tmp) / name, overrides)
            figures[name] = {
                "typed_sequence_accuracy": round(read_typed(summary, paths, texts), 4),
                "handwritten_test_sequence_accuracy": round(read_handwritten(summary), 4),
                "test_split_sequence_accuracy": round(
                    summary["metrics"]["test_sequence_accuracy"], 4
                ),
                "training_seconds": summary["training"]["seconds"],
            }
    shipped = figures["shipped"]
    checks = {
        "typed_sequence_accuracy": (shipped["typed_sequence_accuracy"], ">=", LIMIT_TYPED),
    }
    if not args.skip_baseline:
        loss = (
            figures["no_typed"]["handwritten_test_sequence_accuracy"]
            - shipped["handwritten_test_sequence_accuracy"]
        )
        checks["handwriting_loss"] = (round(loss, 4), "<=", LIMIT_HANDWRITING_LOSS)
    passed = True
    for what, (value, op, limit) in checks.items():
        status, ok = verdict(value, op, limit)
        passed &= ok
        figures[f"verdict/{what}"] = f"{value} {op} {limit}: {status}"
    print(json.dumps(figures, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
