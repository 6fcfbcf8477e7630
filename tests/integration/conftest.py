"""A production STAC API for the integration tests: pgstac on PostgreSQL + PostGIS, served by stac-fastapi-pgstac.

The ``pgstac_url`` fixture starts a throw-away PostgreSQL cluster in a temporary folder on a free
127.0.0.1 port, migrates the pgstac schema with pypgstac, loads the session's synthetic region
into it and serves it with stac-fastapi-pgstac under uvicorn on another free loopback port. On
teardown uvicorn and PostgreSQL are stopped and the folder is removed.

It skips, with the reason, when the ``pgstac`` extra (pypgstac, stac-fastapi-pgstac, uvicorn) is
not installed, when no PostgreSQL server binaries are found (``GLACIERXR_PG_BINDIR`` names their
folder explicitly), when running as root without a ``postgres`` user to run them as, or when the
PostGIS extension is not installed (Debian: ``apt-get install postgresql-15-postgis-3``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glacierxr.stac_server import _answers, stac_files

PG_USER = "postgres"  # the database role, and the OS user that runs the server when we are root
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _pg_bindir() -> Path | None:
    """The folder holding ``initdb``, ``postgres`` and ``pg_ctl``, PostgreSQL 15 preferred."""
    if env := os.environ.get("GLACIERXR_PG_BINDIR"):
        candidates = [Path(env)]
    else:
        def version(p: Path) -> float:
            try:
                return float(p.parent.name)
            except ValueError:
                return 0.0

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        candidates = [Path("/usr/lib/postgresql/15/bin"), *found]
        if exe := shutil.which("postgres"):
            candidates.append(Path(exe).resolve().parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "postgres", "pg_ctl")):
            return folder
    return None


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """Command prefix that drops root (PostgreSQL refuses to run as root), and the user it runs as."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        user = pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no {PG_USER!r} user to run PostgreSQL as")
    if not runuser:
        pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL as another user")
    return [runuser, "-u", PG_USER, "--"], user


def _dsn(port: int) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres"


def _connects(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def _stop(proc: subprocess.Popen, stop_command: list[str] | None = None) -> None:
    """Stop a server process we started (and its process group), politely first."""
    if proc.poll() is None:
        if stop_command:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(stop_command, capture_output=True, timeout=30)
        else:
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def _postgres(bindir: Path, root: Path, attempts: int = 3) -> Iterator[int]:
    """Run a fresh PostgreSQL cluster under ``root`` on a free 127.0.0.1 port; yields the port."""
    prefix, user = _run_as()
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    init = subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        capture_output=True, text=True, timeout=120,
    )
    if init.returncode:
        raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
    log_path = root / "postgres.log"
    for _ in range(attempts):
        port = _free_port()
        dsn = _dsn(port)
        with log_path.open("ab") as log:
            # durability off: a throw-away cluster; the socket lives in root, not /var/run/postgresql
            proc = subprocess.Popen(
                [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=30"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline and not _connects(dsn):
                time.sleep(0.1)
            if proc.poll() is None and _connects(dsn):
                yield port
                return
        finally:
            _stop(proc, [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    raise RuntimeError(f"PostgreSQL did not start after {attempts} attempts: {_tail(log_path)}")


def _require_postgis(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    if row is None:
        pytest.skip("the PostGIS extension is not installed for this PostgreSQL "
                    "(Debian: apt-get install postgresql-15-postgis-3)")


def _records(path: Path) -> Iterator[dict]:
    """STAC objects in a ``*.ndjson`` (one a line) or ``*.json`` file (FeatureCollections unwrapped)."""
    text = path.read_text()
    if path.suffix == ".ndjson":
        yield from (json.loads(line) for line in text.splitlines() if line.strip())
        return
    obj = json.loads(text)
    yield from obj["features"] if obj.get("type") == "FeatureCollection" else [obj]


def _load_pgstac(dsn: str, folder: Path) -> None:
    """Migrate the pgstac schema, then load the collections and items found under ``folder``."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=dsn) as db:
        Migrate(db).run_migration()
        loader = Loader(db)
        for path in stac_files(folder):
            records = list(_records(path))
            if all(r.get("type") == "Collection" for r in records):
                loader.load_collections(iter(records), Methods.insert)
            else:
                loader.load_items(iter(records), Methods.insert)


@contextlib.contextmanager
def _stac_fastapi(pg_port: int, root: Path, attempts: int = 3) -> Iterator[str]:
    """stac-fastapi-pgstac under uvicorn on a free 127.0.0.1 port; yields the API's root URL."""
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1", "PGPORT": str(pg_port), "PGUSER": PG_USER, "PGDATABASE": "postgres",
        "PGPASSWORD": "unused",  # required by the settings; the cluster trusts local connections
        "DB_MIN_CONN_SIZE": "1", "DB_MAX_CONN_SIZE": "4",
    }
    log_path = root / "uvicorn.log"
    for _ in range(attempts):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            # cwd=root: the settings also read a `.env` file from the working directory
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "stac_fastapi.pgstac.app:create_app",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline and not _answers(url, timeout=2):
                time.sleep(0.1)
            if proc.poll() is None and _answers(url, timeout=2):
                yield url
                return
        finally:
            _stop(proc)
    raise RuntimeError(f"stac-fastapi-pgstac did not start after {attempts} attempts: {_tail(log_path)}")


@pytest.fixture(scope="module")
def pgstac_url(region) -> Iterator[str]:
    """A stac-fastapi-pgstac API over pgstac on PostgreSQL + PostGIS, serving ``region``."""
    pytest.importorskip("pypgstac", reason="the pgstac test extra is missing: pip install -e '.[dev,pgstac]'")
    pytest.importorskip("psycopg", reason="the pgstac test extra is missing: pip install -e '.[dev,pgstac]'")
    for module in ("stac_fastapi.pgstac", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is missing: pip install -e '.[dev,pgstac]'")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, postgres, pg_ctl) found; "
                    "Debian: apt-get install postgresql-15 postgresql-15-postgis-3")
    root = Path(tempfile.mkdtemp(prefix="glacierxr-pgstac-"))
    try:
        with _postgres(bindir, root) as pg_port:
            _require_postgis(_dsn(pg_port))
            _load_pgstac(_dsn(pg_port), region.stac_dir)
            with _stac_fastapi(pg_port, root) as url:
                yield url
    finally:
        shutil.rmtree(root, ignore_errors=True)
