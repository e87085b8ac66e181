"""A throwaway PostgreSQL server for tests and benchmarks: Debian's `postgresql` package (binaries in
/usr/lib/postgresql/<version>/bin), a temporary data directory, a free loopback port, stopped at the end.

initdb and postgres refuse to run as root, and CI runs as root: then the server runs as `nobody`, in a
temporary directory that user owns."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "harmony"  # the server's superuser (trust authentication, loopback only)


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or the newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path, databases: tuple[str, ...] = ()) -> None:
        self.bin_dir = bin_dir
        self.databases = databases
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="harmony-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody", "nogroup")
            self._as_user = ["runuser", "-u", "nobody", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120,
                                check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}\n{log}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        # fsync off: a test server's data is thrown away; loopback only, socket in its own folder.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                  "-w", "-t", "60", "start")
        for name in self.databases:
            self.create_database(name)
        return self

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def dagster_env(self, database: str) -> dict[str, str]:
        """What deploy/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": database,
                "DAGSTER_PG_USER": USER, "DAGSTER_PG_PASSWORD": ""}

    def query(self, database: str, sql: str, params=()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.url(database))
        try:
            with conn.cursor() as cur:
                cur.execute(sql, list(params))
                return cur.fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")
