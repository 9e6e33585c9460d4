"""infra/ runs what the native test stack runs (tests/stack.py), so what the tests verify is what
a team deploys: the same programs, options, environment variables, drivers and versions. Docker
does not run here; `docker compose config` checks the file where the docker CLI has compose."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import moto
import prefect
import yaml

from flows.runtime.server_process import server_command
from tests.conftest import REPO
from tests.stack import (
    AUTH_ARGS,
    AUTH_INI_KEYS,
    MLFLOW_AUTH_ENV,
    MLFLOW_BACKEND_ENV,
    MLFLOW_S3_ENV,
    PREFECT_DB_ENV,
    S3_ENV,
    mlflow_command,
    moto_command,
)

INFRA = REPO / "infra"
PORTS = {"postgres": 5432, "s3": 9000, "mlflow": 5000, "prefect": 4200}


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text())["services"]
    return services


def options(command: list[str]) -> list[str]:
    return [token for token in command if token.startswith("-")]


def test_compose_runs_the_native_commands() -> None:
    services = compose()
    native_mlflow = [*mlflow_command(5000, "s3://b"), *AUTH_ARGS]
    assert services["mlflow"]["command"][:2] == native_mlflow[:2] == ["mlflow", "server"]
    assert options(services["mlflow"]["command"]) == options(native_mlflow)
    prefect_cmd = services["prefect"]["command"]
    assert options(prefect_cmd) == options(server_command("0.0.0.0", 4200))
    assert prefect_cmd[:3] == server_command("0.0.0.0", 4200)[:3]
    assert options(services["s3"]["command"]) == options(moto_command(9000))
    backend = services["mlflow"]["environment"][MLFLOW_BACKEND_ENV]
    assert backend.startswith("postgresql+psycopg://")  # the pinned driver, as natively
    assert services["prefect"]["environment"][PREFECT_DB_ENV].startswith("postgresql+asyncpg://")


def test_no_secret_on_a_command_line() -> None:
    """A password or key given to a service comes in its environment (from infra/.env), never
    in its command, which `ps` shows to every user of the host."""
    for name, service in compose().items():
        command = service.get("command") or []
        words = command if isinstance(command, list) else [command]
        secret = [w for w in words if re.search(r"PASSWORD|SECRET|KEY|TOKEN", str(w))]
        assert not secret, (name, secret)


def test_compose_sets_the_native_environment_and_ports() -> None:
    services = compose()
    assert set(MLFLOW_S3_ENV) | set(MLFLOW_AUTH_ENV) <= set(services["mlflow"]["environment"])
    assert set(S3_ENV) <= set(services["s3-bucket"]["environment"])
    assert PREFECT_DB_ENV in services["prefect"]["environment"]
    for name, port in PORTS.items():
        published = [int(p.split(":")[-1]) for p in services[name].get("ports", [])]
        assert published == [port], name
        assert name == "postgres" or str(port) in json.dumps(services[name]["command"])
    worker = services["worker"]["environment"]
    assert worker["PREFECT_API_URL"] == f"http://prefect:{PORTS['prefect']}/api"
    assert worker["MLFLOW_TRACKING_URI"] == f"http://mlflow:{PORTS['mlflow']}"
    assert worker["CRNN_WORKSPACE"] == "/workspace"
    assert "workspace:/workspace" in " ".join(services["worker"]["volumes"])


def pinned() -> dict[str, str]:
    """The exact versions `make setup` installs (requirements/constraints.txt)."""
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {name.strip(): version.strip() for name, version in pairs}


def test_compose_images_are_the_tested_versions() -> None:
    services = compose()
    versions = {
        "prefect": prefect.__version__,
        "mlflow": mlflow.__version__,
        "moto": moto.__version__,
    }
    assert pinned() == versions, "make setup must install the versions infra/ runs"
    assert services["prefect"]["image"] == f"prefecthq/prefect:{prefect.__version__}-python3.12"
    assert services["mlflow"]["build"]["args"]["MLFLOW_VERSION"] == mlflow.__version__
    assert services["s3"]["image"] == f"motoserver/moto:{moto.__version__}"
    dockerfile = (INFRA / "mlflow" / "Dockerfile").read_text()
    assert f"ARG MLFLOW_VERSION={mlflow.__version__}" in dockerfile and "psycopg" in dockerfile


def test_auth_config_has_the_native_keys() -> None:
    ini = configparser.ConfigParser()
    ini.read(INFRA / "mlflow" / "basic_auth.ini")
    assert tuple(ini["mlflow"]) == AUTH_INI_KEYS


def test_project_image_and_kubernetes_template() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "pip install '.[dask]'" in dockerfile and '"--pool", "crnn"' in dockerfile
    template = json.loads((INFRA / "k8s" / "base-job-template.json").read_text())
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert container["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    mounts = {m["mountPath"] for m in container["containers"][0]["volumeMounts"]}
    assert "/workspace" in mounts
    assert template["variables"]["properties"]["env"]["default"]["CRNN_WORKSPACE"] == "/workspace"


def test_docker_compose_config_where_docker_is(tmp_path: Path) -> None:
    """Runs `docker compose config` where the docker CLI has compose (no daemon needed)."""
    docker = shutil.which("docker")
    has_compose = bool(docker) and (
        subprocess.run([docker or "docker", "compose", "version"], capture_output=True).returncode
        == 0
    )
    env_file = tmp_path / ".env"
    env_file.write_text((INFRA / ".env.example").read_text())
    if not has_compose:  # nothing to run here; the checks above hold regardless
        assert (INFRA / ".env.example").is_file()
        return
    compose_file = str(INFRA / "compose.yaml")
    done = subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", compose_file, "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_dask_cluster_runs_the_project_image_and_the_worker_uses_it() -> None:
    services = compose()
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["image"] == worker["image"] == services["worker"]["image"]
    assert scheduler["command"][:2] == ["dask", "scheduler"] and "8786" in scheduler["command"]
    address = services["worker"]["environment"]["CRNN_CLUSTER"]
    assert address == "tcp://dask-scheduler:8786" and worker["command"][:3] == [
        "dask",
        "worker",
        address,
    ]
    assert "workspace:/workspace" in worker["volumes"]  # the parts and the job's model: shared
    assert "'.[dask]'" in (INFRA / "Dockerfile").read_text()


def test_the_kubernetes_form_of_training_on_several_machines() -> None:
    """An Indexed Job: pod 0 runs the pipeline with a rendezvous at its own stable name, the
    others join; the node counts agree; every pod shares the workspace."""
    service, job = yaml.safe_load_all((INFRA / "k8s" / "distributed-training.yaml").read_text())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    script = pod["containers"][0]["args"][0]
    assert f"training.distributed.nodes={spec['completions']}" in script
    name = f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"  # headless: pod 0 has a stable name
    assert f"rdzv_endpoint={name}:{service['spec']['ports'][0]['port']}" in script
    assert " run text-lines" in script and " join text-lines" in script
    assert {"name": "workspace", "mountPath": "/workspace"} in pod["containers"][0]["volumeMounts"]
