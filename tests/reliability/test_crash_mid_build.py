"""A preprocessing killed with SIGKILL while it writes shards publishes nothing (no shard of it is
visible where readers look), and building again gives the same shard set, complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crnn.config import load_pipeline
from crnn.data.preprocess import preprocess
from crnn.data.publish import STAGING
from crnn.data.shards import Manifest, verify_shards
from tests.conftest import tiny_pipelines, write_config

BUILD = """
import sys
from pathlib import Path
from crnn.config import load_pipeline
from crnn.data.preprocess import preprocess
_, cfg = load_pipeline(sys.argv[1])
preprocess(cfg.data, cfg.preprocessing, Path(sys.argv[2]))
"""


def test_a_build_killed_mid_write_leaves_nothing_visible_and_rebuilds_the_same(
    tmp_path: Path,
) -> None:
    mapping = tiny_pipelines(tmp_path / "ws")
    tiny = mapping["pipelines"]["tiny"]
    tiny["data"]["lines"] = {"train": 3000, "val": 200, "test": 200}  # several shards to write
    tiny["preprocessing"]["shard_rows"] = 256
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    shards = tmp_path / "shards"
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(config), str(shards)])
    deadline = time.monotonic() + 120
    while not list(shards.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)  # until the build's first shard is on disk, wherever it writes it
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    visible = [p for p in shards.iterdir() if p.name != STAGING and not p.name.startswith(".")]
    assert not [p for p in visible if p.is_dir() and list(p.glob("*.parquet"))], visible

    _, cfg = load_pipeline(config)
    built = preprocess(cfg.data, cfg.preprocessing, shards)
    assert not built.reused
    manifest = Manifest.from_file(built.manifest_path)
    verify_shards(built.manifest_path.parent, manifest)
    assert sum(s.rows for s in manifest.shards) == 3000 * 2 + 200 + 200  # train: one copy
    assert not list((shards / STAGING).glob("*"))  # the killed build's leftovers are gone
    again = preprocess(cfg.data, cfg.preprocessing, tmp_path / "elsewhere")
    assert again.digest == built.digest
    assert (
        json.loads(again.manifest_path.read_text())["shards"]
        == json.loads(built.manifest_path.read_text())["shards"]
    )
