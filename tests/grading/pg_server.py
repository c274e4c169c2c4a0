"""A throwaway PostgreSQL server for tests: ``initdb`` in a temp folder, a Unix socket, trust auth.

Debian's ``postgresql`` package puts the server binaries in /usr/lib/postgresql/<version>/bin (not
on PATH); :func:`find_bindir` looks there. PostgreSQL refuses to run as root: as root, the server
runs as ``nobody`` (``setpriv``) and owns its temp folders.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)  # newest version first
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for folder in candidates:
        if folder and all(Path(folder, name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def bindir_or_skip() -> Path:
    """The server binaries (and the psycopg 3 driver); a skip with the reason locally, a failure
    when ``CI`` is set."""
    import importlib.util

    found, why = find_bindir(), ""
    if found is None:
        why = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
    elif importlib.util.find_spec("psycopg") is None:
        why = "the PostgreSQL driver psycopg 3 is not installed: pip install 'psycopg[binary]'"
    if why:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI: {why}", pytrace=False)
        pytest.skip(why)
    return found


class PgServer:
    """One server: ``start()``, ``stop()``, ``url(db)``, ``createdb(name)``; ``stop`` is idempotent."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.home = Path(tempfile.mkdtemp(prefix="lepton-pg-"))  # short: socket paths are limited to ~100 bytes
        self.data, self.socket, self.log = self.home / "data", self.home / "sock", self.home / "server.log"
        self.socket.mkdir()
        self._as = []
        if os.geteuid() == 0:  # the server refuses root: run it as nobody, owning its folders
            import pwd

            user = pwd.getpwnam("nobody")
            for path in (self.home, self.socket):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            raise
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{self.socket}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def _run(self, tool, *args, check=True):
        cmd = [*self._as, str(self.bindir / tool), *map(str, args)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and result.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{log}")
        return result

    def start(self) -> "PgServer":
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """Stop fast; if pg_ctl cannot, kill the postmaster (nothing is left running)."""
        if not (self.data / "postmaster.pid").exists():
            return
        if self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False).returncode:
            try:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)
            except (OSError, ValueError, IndexError):
                pass

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.socket}"

    def createdb(self, name: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import psycopg  # psycopg 3: SQLAlchemy 2.1's default driver for postgresql:// URLs

        with psycopg.connect(dbname="postgres", user="postgres", host=str(self.socket), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def started(bindir: Path, request) -> PgServer:
    """A running server, stopped and removed when ``request``'s scope ends (even after a failure)."""
    server = PgServer(bindir)
    request.addfinalizer(server.remove)
    return server.start()
