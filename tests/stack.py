"""Servers the tests start on 127.0.0.1, each in its own process group, waited for on its health
endpoint and stopped after: PostgreSQL (installed from the system packages when missing), an
S3-compatible store (moto's server mode), MLflow tracking servers (proxied artifacts, optionally
basic auth) and a Prefect server on PostgreSQL. ``team_stack`` starts them all, in parallel where
they do not depend on each other."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.runtime.server_process import free_port, local_server, stop_group

BUCKET = "crnn-artifacts"
S3_KEY_ID = "crnn-test-key"


def spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server process in its own process group, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"{url}: the server exited; log:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{url} did not answer; log:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


JOBS_OFF = ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # as crnn ui runs it


def mlflow_command(port: int, artifacts: str, host: str = "127.0.0.1") -> list[str]:
    """How the tracking server is started, here and in infra/compose.yaml; its store's URI (a
    database password in it) comes in :data:`MLFLOW_BACKEND_ENV`, not on the command line that
    `ps` shows every user."""
    return [
        *("mlflow", "server", "--host", host, "--port", str(port), "--workers", "1"),
        *("--artifacts-destination", artifacts),
    ]


MLFLOW_BACKEND_ENV = "MLFLOW_BACKEND_STORE_URI"  # mlflow server's --backend-store-uri


def moto_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return ["-H", host, "-p", str(port)]  # after `python -m moto.server` (the image's entrypoint)


AUTH_ARGS = ["--app-name", "basic-auth"]
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
MLFLOW_S3_ENV = (*S3_ENV, "MLFLOW_S3_ENDPOINT_URL")
MLFLOW_AUTH_ENV = (
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
PREFECT_DB_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
AUTH_INI_KEYS = (
    "default_permission",
    "database_uri",
    "admin_username",
    "authorization_function",
    "auth_cache_ttl_seconds",  # a checked password is cached (else a PBKDF2 hash per request)
)


@contextlib.contextmanager
def mlflow_server(
    home: Path,
    backend_uri: str | None = None,
    artifacts: str | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``mlflow server`` with proxied artifacts (clients need only its URL); yields the URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    backend = backend_uri or f"sqlite:///{home / 'mlflow.db'}"
    destination = artifacts or (home / "artifacts").as_uri()
    command = [sys.executable, "-m", *mlflow_command(port, destination), *(extra or [])]
    log = home / "mlflow-server.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    child_env[MLFLOW_BACKEND_ENV] = backend
    child_env[JOBS_OFF[0]] = JOBS_OFF[1]  # no GenAI job runners (several processes each)
    proc = spawn(command, log, {**child_env, **(env or {})}, cwd=home)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        stop_group(proc)  # type: ignore[arg-type]


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs; installs Debian's postgresql when missing."""
    found = _find_postgres()
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"],
            check=True,
            env=env,
            capture_output=True,
        )
        found = _find_postgres()
    assert found is not None, (
        "PostgreSQL is needed: install it (Debian: apt-get install postgresql)"
    )
    return found


def _find_postgres() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    on_path = shutil.which("postgres")
    for candidate in [*candidates, *([on_path] if on_path else [])]:
        if Path(candidate).with_name("initdb").exists():
            return Path(candidate).parent
    return None


@contextlib.contextmanager
def postgres(roles: dict[str, str]) -> Iterator[int]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a role and a database per ``roles`` entry
    (name -> password, scram-sha-256 over TCP); yields its port."""
    import psycopg

    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="crnn-pg-"))  # outside pytest's 0700 folders
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    (root / "pw").write_text(secrets.token_hex(12))
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    subprocess.run(
        [
            *as_postgres,
            *(str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres"),
            *("--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={root / 'pw'}"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(root / "postgres.log", "ab")  # noqa: SIM115  (kept open for the server's life)
    proc = subprocess.Popen(
        [
            *as_postgres,
            *(str(bin_dir / "postgres"), "-D", str(root / "data"), "-p", str(port)),
            *("-k", str(root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                admin = psycopg.connect(host=str(root), port=port, user="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                assert proc.poll() is None, (root / "postgres.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "PostgreSQL did not start"
                time.sleep(0.2)
        with admin:
            for name, password in roles.items():
                admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
                admin.execute(f"CREATE DATABASE {name} OWNER {name}")
        yield port
    finally:
        stop_group(proc)  # type: ignore[arg-type]
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def s3_client(url: str, secret_key: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )


@contextlib.contextmanager
def s3_server(home: Path, secret_key: str) -> Iterator[str]:
    """moto's S3-compatible server with the artifact bucket created; yields its endpoint URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "s3.log"
    proc = spawn([sys.executable, "-m", "moto.server", *moto_command(port)], log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/moto-api/", proc, log)
        s3_client(url, secret_key).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        stop_group(proc)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TeamStack:
    mlflow_open: str  # no auth
    mlflow_auth: str  # basic auth: ADMIN / admin_password
    admin_password: str
    prefect_api: str
    s3_url: str
    s3_secret: str
    pg_port: int
    pg_passwords: dict[str, str]

    def s3(self) -> Any:
        return s3_client(self.s3_url, self.s3_secret)

    def pg_dsn(self, db: str) -> str:
        return f"postgresql://{db}:{self.pg_passwords[db]}@127.0.0.1:{self.pg_port}/{db}"


ADMIN = "admin"


@contextlib.contextmanager
def team_stack(home: Path, secret: str) -> Iterator[TeamStack]:
    """PostgreSQL + S3, then two MLflow servers (one with basic auth) and a Prefect server on
    PostgreSQL, all on 127.0.0.1. ``secret`` is every password and key, for leak searches."""
    roles = {"mlflow": secret, "mlflowauth": secret, "prefect": secret}
    s3_env = dict(zip(S3_ENV, (S3_KEY_ID, secret, "us-east-1"), strict=True))
    with contextlib.ExitStack() as stack:
        pg_port, s3_url = _enter_all(stack, [postgres(roles), s3_server(home / "s3", secret)])
        db = f"127.0.0.1:{pg_port}"
        s3 = {**s3_env, "MLFLOW_S3_ENDPOINT_URL": s3_url}
        auth_ini = home / "auth.ini"
        ini = dict(
            zip(AUTH_INI_KEYS, ("READ", f"sqlite:///{home / 'auth.db'}", ADMIN), strict=False)
        )
        ini["authorization_function"] = "mlflow.server.auth:authenticate_request_basic_auth"
        ini["auth_cache_ttl_seconds"] = "60"
        auth_ini.write_text("[mlflow]\n" + "".join(f"{k} = {v}\n" for k, v in ini.items()))
        auth_values = (str(auth_ini), secret, secrets.token_hex(16))
        auth_env = {**s3, **dict(zip(MLFLOW_AUTH_ENV, auth_values, strict=True))}
        prefect_env = {PREFECT_DB_ENV: f"postgresql+asyncpg://prefect:{secret}@{db}/prefect"}
        servers = [
            mlflow_server(
                home / "mlflow-open",
                f"postgresql+psycopg://mlflow:{secret}@{db}/mlflow",
                f"s3://{BUCKET}/open",
                env=s3,
            ),
            mlflow_server(
                home / "mlflow-auth",
                f"postgresql+psycopg://mlflowauth:{secret}@{db}/mlflowauth",
                f"s3://{BUCKET}/auth",
                extra=AUTH_ARGS,
                env=auth_env,
            ),
            local_server(home / "prefect", free_port(), home / "prefect.log", env=prefect_env),
        ]
        open_url, auth_url, prefect_api = _enter_all(stack, servers)
        yield TeamStack(open_url, auth_url, secret, prefect_api, s3_url, secret, pg_port, roles)


def _enter_all(stack: contextlib.ExitStack, managers: list[Any]) -> list[Any]:
    """Enter context managers in parallel threads; each one entered is exited by ``stack``."""
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
    values, error = [], None
    for manager, future in zip(managers, futures, strict=True):
        try:
            values.append(future.result())
            stack.push(manager.__exit__)
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
    return values
