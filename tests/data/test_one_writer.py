"""One writer per shard set: concurrent builders of one digest, in real processes, share one set;
a builder that died leaves a lock the OS released and a staging folder the next build removes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from crnn.config import load_pipeline
from crnn.data.catalog import open_source
from crnn.data.preprocess import code_version, shard_set_digest
from crnn.data.publish import STAGING, lock_path
from crnn.data.shards import Manifest, verify_shards
from tests.conftest import tiny_pipelines, write_config

BUILD = """
import json, sys
from pathlib import Path
from crnn.config import load_pipeline
from crnn.data.preprocess import preprocess
_, cfg = load_pipeline(sys.argv[1])
s = preprocess(cfg.data, cfg.preprocessing, Path(sys.argv[2]))
print(json.dumps({"reused": s.reused, "manifest": str(s.manifest_path)}))
"""


# who builds, who waits and what is left do not depend on the size of the set: a small one
LINES = {"train": 32, "val": 8, "test": 8}


def _setup(tmp_path: Path) -> tuple[Path, Path, str]:
    mapping = tiny_pipelines(tmp_path / "ws")
    mapping["pipelines"]["tiny"]["data"]["lines"] = LINES
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    _, cfg = load_pipeline(config)
    digest = shard_set_digest(
        open_source(cfg.data).info().digest, cfg.preprocessing, code_version()
    )
    return config, tmp_path / "shards", digest[:16]


def _builder(config: Path, shards: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BUILD, str(config), str(shards)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )


def _wait_for(predicate, what: str, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_concurrent_builders_share_one_set_and_delete_nothing(tmp_path: Path) -> None:
    config, shards, name = _setup(tmp_path)
    other = shards / "0123456789abcdef"  # another shard set in the same folder
    other.mkdir(parents=True)
    (other / "manifest.json").write_text("{}")
    held = FileLock(lock_path(shards, name))
    held.acquire()  # both builders start while the lock is taken: both must wait
    logs = [tmp_path / f"builder{i}.log" for i in range(2)]
    procs = [_builder(config, shards, log) for log in logs]
    try:
        _wait_for(lambda: all("waiting" in log.read_text() for log in logs), "both to wait")
    finally:
        held.release()
    results = []
    for proc, log in zip(procs, logs, strict=True):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, log.read_text()
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(r["reused"] for r in results) == [False, True]  # built once, reused once
    assert results[0]["manifest"] == results[1]["manifest"] == str(shards / name / "manifest.json")
    root = shards / name
    verify_shards(root, Manifest.from_file(root / "manifest.json"))  # complete, nothing deleted
    assert (other / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in shards.iterdir()) == sorted([".locks", STAGING, name, other.name])
    assert list((shards / STAGING).iterdir()) == []


def test_a_killed_builder_blocks_nobody_and_its_leftovers_go(tmp_path: Path) -> None:
    config, shards, name = _setup(tmp_path)
    stale = shards / STAGING / f"{name}.99999.deadbeef"
    stale.mkdir(parents=True)
    (stale / "train-00000.parquet").write_bytes(b"half a shard")
    holder = subprocess.Popen(  # takes the lock, then dies without releasing it
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; "
            "l = FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(600)",
            str(lock_path(shards, name)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    log = tmp_path / "builder.log"
    proc = _builder(config, shards, log)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log.read_text()
    assert json.loads(out.strip().splitlines()[-1])["reused"] is False
    assert not stale.exists()
    root = shards / name
    verify_shards(root, Manifest.from_file(root / "manifest.json"))
