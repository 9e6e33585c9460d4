"""Each source owns what it does with raw input (crnn/data/raw.py looks its methods up by the
source's name): texts through the stored tokenizer, audio through the stored log-mel settings,
arrays as they are; what `crnn predict FILE...` reads likewise."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crnn.data.raw import files_input, raw_to_inputs
from crnn.data.sources import SOURCES
from crnn.errors import DataError
from tests.conftest import REPO


def test_no_branch_on_source_names_outside_the_sources() -> None:
    """No comparison with a source's name, and no table keyed by source names, outside the
    modules that register sources and the config that types them."""
    from crnn.data import catalog

    names = set(SOURCES.names())
    assert {"text_table", "audio_folder", "image_folder"} <= names
    allowed = {f"crnn/data/{m.__name__.rsplit('.', 1)[1]}.py" for m in catalog.READERS}
    allowed.add("crnn/config/data.py")
    found = []
    for path in sorted((REPO / "crnn").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            sides = []
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
            elif isinstance(node, ast.Dict):
                sides = [k for k in node.keys if k is not None]
            found += [
                f"{rel}:{node.lineno} names source {side.value!r}"
                for side in sides
                if isinstance(side, ast.Constant) and side.value in names
            ]
    assert not found, "\n".join(found)


def test_arrays_pass_as_they_are_for_image_sources() -> None:
    x = raw_to_inputs([[0, 255], [128, 1]], {"source": "image_folder"}, {})
    assert x.dtype == np.float32 and x.tolist() == [[0.0, 255.0], [128.0, 1.0]]


def test_an_audio_model_says_what_it_takes_in_one_line() -> None:
    source = {
        "source": "audio_folder",
        "sample_rate": 8000,
        "duration_seconds": 1.0,
        "n_mels": 16,
        "n_fft": 256,
        "hop_length": 128,
    }
    with pytest.raises(DataError, match="an audio model takes a DataFrame with 'audio'"):
        raw_to_inputs(pd.DataFrame({"pixels": [1]}), source, {})
    waves = pd.DataFrame({"audio": [np.zeros(8000, np.float32)], "sample_rate": [8000]})
    assert raw_to_inputs(waves, source, {}).shape[:3] == (1, 1, 16)


def test_predict_reads_files_the_way_their_source_does(tmp_path: Path) -> None:
    texts = tmp_path / "reviews.txt"
    texts.write_text("good film\n\nbad film\n", encoding="utf-8")
    names, model_input = files_input("text_table", [texts], image_model=False)
    assert names == [f"{texts}:1", f"{texts}:3"] and model_input == ["good film", "bad film"]

    images = [tmp_path / "a.png", tmp_path / "b.png"]
    assert files_input("image_folder", images, image_model=True) == (
        [str(p) for p in images],
        [str(p) for p in images],
    )
    names, frame = files_input("video_clips", images, image_model=False)
    assert list(frame["path"]) == names == [str(p) for p in images]
