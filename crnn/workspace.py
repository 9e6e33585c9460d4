"""The workspace: one folder with all local state (shards, checkpoints, MLflow store, artifacts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def run_dir(self, run_id: str) -> Path:
        """Checkpoints and evaluation outputs of one pipeline run."""
        return self.root / "runs" / run_id

    def node_spec(self, pipeline: str) -> Path:
        """Where a training on several machines tells the others how to join (`crnn join`)."""
        return self.root / "distributed" / f"{pipeline}.json"


def resolve_workspace(configured: str, config_path: Path) -> Workspace:
    """CRNN_WORKSPACE if set, else ``configured`` relative to the config file's folder."""
    env = os.environ.get("CRNN_WORKSPACE")
    root = Path(env) if env else (config_path.resolve().parent / configured)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root)


def state_outside_a_project() -> Path:
    """Local state of commands run outside a project on a remote store (the local Prefect's
    home, downloads): the user's cache folder."""
    root = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "crnn"
    root.mkdir(parents=True, exist_ok=True)
    return root
