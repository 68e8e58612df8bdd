"""A throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl` in a temp dir.

The server listens on 127.0.0.1 on a free port (and a Unix socket in its own folder),
trusts local connections, holds a database `test`, and is stopped and deleted at the end.
The binaries come from /usr/lib/postgresql/<version>/bin (Debian's layout, newest first)
or from PATH. PostgreSQL refuses to run as root: under root the server runs as the
`postgres` system user (through `runuser`), in a folder handed over to that user.

Missing binaries fail the tests that need the server, with what to install: CI provides
them (.ci/run installs the `postgresql` package), and a skipped test proves nothing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DATABASE = "test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: the newest Debian version, else PATH."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).parent
    return None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    run_as: pwd.struct_passwd | None  # the system user the server runs as, under root

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as.pw_name, "--", *command]
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=timeout, cwd="/"
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
            )

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        # fsync=off: a throwaway server whose crash safety is not under test.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def postgres_server() -> Iterator[PostgresServer]:
    """The body of a session fixture: start a server, yield it, stop and delete it."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin or on PATH: install the `postgresql` package "
            "(.ci/run does on CI)",
            pytrace=False,
        )
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="mlwarden-pg-"))
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.fail(
                "running as root, and there is no `postgres` user to run PostgreSQL as "
                "(PostgreSQL refuses root): install the `postgresql` package",
                pytrace=False,
            )
        os.chown(root, run_as.pw_uid, run_as.pw_gid)
    server = PostgresServer(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as)
    try:
        try:
            server.start()
        except Exception as exc:
            pytest.fail(f"cannot start PostgreSQL: {exc}\n{server.log_tail()}", pytrace=False)
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
