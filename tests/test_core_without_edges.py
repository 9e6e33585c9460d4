"""The core (data, models, train, evaluate) and the benchmark run on a bare GPU image: torch,
numpy, pandas, pyarrow, scikit-learn, without Prefect or MLflow."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crnn.config import load_pipeline
from tests.conftest import tiny_pipelines, write_config

REPO = Path(__file__).resolve().parents[1]

BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoEdges(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"prefect", "mlflow", "flows"}:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, NoEdges())
    """
)


def run_blocked(code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "core.py"
    script.write_text(BLOCK + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )


@pytest.mark.integration
def test_core_trains_and_evaluates_without_prefect_or_mlflow(tmp_path) -> None:
    mapping = tiny_pipelines(tmp_path / "ws")  # what is imported does not depend on the size
    mapping["pipelines"]["tiny"]["data"]["lines"] = {"train": 64, "val": 16, "test": 16}
    _, cfg = load_pipeline(write_config(tmp_path / "pipelines.yaml", mapping))
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    proc = run_blocked(
        """
        import json, sys
        from pathlib import Path
        from crnn.config import PipelineConfig
        from crnn.data.preprocess import preprocess
        from crnn.inference.evaluate import evaluate_checkpoint
        from crnn.engine.train import train_on_shards

        out = Path(sys.argv[1])
        cfg = PipelineConfig.model_validate_json((out / "cfg.json").read_text())
        shards = preprocess(cfg.data, cfg.preprocessing, out / "shards")
        trained = train_on_shards(shards.manifest_path, cfg.model, cfg.training, out / "ckpt")
        report = evaluate_checkpoint(trained.best_checkpoint, shards.manifest_path,
                                     out / "eval", cfg.evaluation)
        assert not [m for m in sys.modules if m.split(".")[0] in {"prefect", "mlflow"}]
        print(json.dumps({"epochs": trained.epochs_run, **report.metrics}))
        """,
        tmp_path,
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["epochs"] == cfg.training.epochs and 0 <= result["test_cer"] <= 1


@pytest.mark.integration
def test_training_benchmark_runs_on_a_bare_image(tmp_path) -> None:
    """A small `bench/train_bench.py` run: every figure but R4 (which needs the edges)."""
    out = tmp_path / "train.json"
    proc = run_blocked(
        """
        import runpy, sys
        sys.argv = ["train_bench.py", *sys.argv[1:]]
        runpy.run_path("bench/train_bench.py", run_name="__main__")
        """,
        tmp_path,
        # 128 lines: one share of `--steps` batches of 32 (a figure of each kind, from less)
        *("--rows", "128", "--repeats", "1", "--models", "default", "--steps", "4"),
        *("--out", str(out), "--report-only"),  # figures of a tiny run: no verdict on them
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "R4 tracking+orchestration / training" in proc.stdout and "skipped" in proc.stdout
    report = json.loads(out.read_text())
    for lines in ("shi2015", "default"):
        # measured, not judged: speed is the benchmark's business, not a test's
        assert report[f"loader_{lines}"]["R1"] > 0 and report[f"loader_{lines}"]["R2"] > 0
    step = report["step_default_b32"]
    assert step["R3"] > 0 and step["steps"] == 4 and 0 <= step["loader_wait_share"] < 1
