"""What a finished scoring job's rows say beyond its predictions: the rows a person should look at
(confidence under a threshold), and the metrics against what the input said the rows are (a line
image's ``NAME.gt.txt``), where it said.

Both read the job's whole output, every part an earlier attempt wrote included, so a resumed
job reports the same as one that never stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crnn.atomic import atomic_path
from crnn.tasks.base import Task

REVIEW_FILE = "_review.csv"  # a leading "_": Parquet dataset readers skip it
REVIEW_COLUMNS = ["sample_id", "prediction", "confidence", "char_confidence", "truth"]


def write_review(out_dir: Path, scores: pa.Table, below: float) -> int:
    """The rows whose confidence is under ``below``, least confident first, as a CSV a person can
    open (``_review.csv`` in the job's folder; per-character confidences joined by spaces).
    Returns how many; rows with no confidence (a regression's) are never listed."""
    low = scores.filter(pc.less(scores.column("confidence"), below))
    frame = low.select([c for c in REVIEW_COLUMNS if c in low.column_names]).to_pandas()
    frame = frame.sort_values(["confidence", "sample_id"], kind="stable")
    if "char_confidence" in frame:
        frame["char_confidence"] = [
            "" if chars is None else " ".join(f"{c:.3f}" for c in chars)
            for chars in frame["char_confidence"]
        ]
    with atomic_path(Path(out_dir) / REVIEW_FILE) as tmp:
        frame.to_csv(tmp, index=False)
    return len(frame)


def against_truth(scores: pa.Table, task: Task) -> dict[str, float]:
    """The task's metrics (CER, WER, accuracy for lines) over the rows with a truth, and how many
    those are (``rows``); empty when no row has one."""
    if "truth" not in scores.column_names:
        return {}
    given = scores.filter(pc.is_valid(scores.column("truth")))
    if given.num_rows == 0:
        return {}
    truths = given.column("truth").to_pylist()
    preds = given.column("prediction").to_pylist()
    metrics = task.metrics(truths, preds)
    return {"rows": float(given.num_rows), **{k: float(np.float64(v)) for k, v in metrics.items()}}
