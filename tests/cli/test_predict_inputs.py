"""What `crnn predict` hands a model: files, folders of them, texts from --text or stdin."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from crnn.cli.models import predict_inputs
from crnn.errors import UserError


def _args(*files: str, text: tuple[str, ...] = ()) -> argparse.Namespace:
    return argparse.Namespace(model="crnn-sentiment@champion", files=list(files), text=list(text))


def test_a_text_model_reads_files_folders_texts_and_stdin(tmp_path, monkeypatch) -> None:
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "a.txt").write_text("good film\n\nbad plot\n")
    (tmp_path / "reviews" / "skip.csv").write_text("not,read\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    text_model = SimpleNamespace(image_model=False)
    args = _args(str(tmp_path / "reviews"), "-", text=("typed",))
    names, texts = predict_inputs(args, "text_table", text_model)
    folder = tmp_path / "reviews" / "a.txt"
    assert names == [f"{folder}:1", f"{folder}:3", "text 1", "stdin:1"]
    assert texts == ["good film", "bad plot", "typed", "from stdin"]


def test_an_image_model_takes_the_images_of_a_folder_and_no_texts(tmp_path: Path) -> None:
    (tmp_path / "scans" / "deep").mkdir(parents=True)
    for name in ("b.png", "deep/a.jpg", "b.gt.txt", ".hidden.png"):
        (tmp_path / "scans" / name).write_bytes(b"")
    image_model = SimpleNamespace(image_model=True)
    names, paths = predict_inputs(_args(str(tmp_path / "scans")), "line_images", image_model)
    assert names == paths == [str(tmp_path / "scans" / "b.png"), str(tmp_path / "scans/deep/a.jpg")]
    with pytest.raises(UserError, match="does not read texts"):
        predict_inputs(_args(text=("hello",)), "line_images", image_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no file"):
        predict_inputs(_args(str(tmp_path / "empty")), "line_images", image_model)
