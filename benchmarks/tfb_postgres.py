"""A private PostgreSQL for the TechEmpower section: installed from Debian when missing,
started in a temporary directory on a free loopback port, filled with TechEmpower's
``world`` (10,000 rows) and ``fortune`` (the 12 standard fortunes) tables, stopped and
deleted afterwards.

    with tfb_postgres.running() as database:
        database.url   # postgresql://benchmarkdbuser@127.0.0.1:PORT/hello_world

The cluster runs as the ``postgres`` user when the bench runs as root (PostgreSQL refuses
root), trusts loopback connections (it listens on 127.0.0.1 and a socket in its directory
only), loads ``pg_stat_statements`` so that the verifier can count the queries an app ran,
and trades durability for speed (``fsync``, ``synchronous_commit`` and ``full_page_writes``
off: the data is thrown away at the end, and every app meets the same settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, always
USER = "benchmarkdbuser"
DATABASE = "hello_world"
ROWS = 10_000
SEED = 29  # the world table is the same in every run

# TechEmpower's fortune table, as its setup scripts create it.
FORTUNES = (
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal points, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. — Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "フレームワークのベンチマーク"),
)


class Unavailable(RuntimeError):
    """PostgreSQL is not installed and cannot be (not root, no apt-get, or the install
    failed): the section is skipped, saying why."""


@dataclass(frozen=True)
class Database:
    url: str
    port: int
    pid: int


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout first), or None."""
    found = []
    for postgres in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        match = re.fullmatch(r"\d+", postgres.parent.parent.name)
        if match and (postgres.parent / "initdb").exists():
            found.append((int(match.group()), postgres.parent))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def ensure_installed(say: Callable[[str], None] = _say) -> Path:
    """PostgreSQL's bin directory, installing Debian's ``postgresql`` first when it is
    missing (``apt-get update``, then ``apt-get install -y postgresql``); ``Unavailable``
    when that cannot be done."""
    found = binaries()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("PostgreSQL is not installed, and only root with apt-get can install"
                          " it here (apt-get install -y postgresql)")
    say("tfb: installing PostgreSQL (apt-get install -y postgresql)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                  env=environment, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{' '.join(command)} failed: {exc}") from exc
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(command)} failed (exit {done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-300:]}")
    found = binaries()
    if found is None:
        raise Unavailable("apt-get installed postgresql, but no initdb/postgres was found")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cpu: int | None) -> list[str]:
    if cpu is not None and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def world_rows() -> list[tuple[int, int]]:
    """The world table: random numbers 1..10,000, never equal to the row's id (so that an
    app answering the id as ``randomNumber`` cannot pass the verifier by chance)."""
    rng = random.Random(SEED)
    rows = []
    for id_ in range(1, ROWS + 1):
        number = id_
        while number == id_:
            number = rng.randint(1, ROWS)
        rows.append((id_, number))
    return rows


async def _seed(port: int) -> None:
    import asyncpg

    admin = await asyncpg.connect(host=HOST, port=port, user=USER, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{DATABASE}" ENCODING \'UTF8\' TEMPLATE template0')
    finally:
        await admin.close()
    connection = await asyncpg.connect(host=HOST, port=port, user=USER, database=DATABASE)
    try:
        await connection.execute("""
            CREATE EXTENSION pg_stat_statements;
            CREATE TABLE world (id integer NOT NULL PRIMARY KEY,
                                randomnumber integer NOT NULL DEFAULT 0);
            CREATE TABLE fortune (id integer NOT NULL PRIMARY KEY,
                                  message varchar(2048) NOT NULL);
        """)
        await connection.copy_records_to_table("world", records=world_rows(),
                                               columns=["id", "randomnumber"])
        await connection.copy_records_to_table("fortune", records=FORTUNES,
                                               columns=["id", "message"])
        for table in ("world", "fortune"):
            await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()


async def _ready(port: int, server: subprocess.Popen[bytes], limit: float) -> None:
    import asyncpg

    deadline = time.monotonic() + limit
    while True:  # bounded by the deadline
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with code {server.returncode}")
        try:
            connection = await asyncpg.connect(host=HOST, port=port, user=USER,
                                               database="postgres", timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres did not accept connections in {limit:.0f} s"
                                   ) from None
            await asyncio.sleep(0.2)
        else:
            await connection.close()
            return


@contextlib.contextmanager
def running(cpu: int | None = None, say: Callable[[str], None] = _say) -> Iterator[Database]:
    """Start a seeded private cluster (pinned to ``cpu`` when given), yield it, stop it."""
    bin_dir = ensure_installed(say)
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    run_as = {"user": owner.pw_uid, "group": owner.pw_gid} if owner else {}
    home = Path(tempfile.mkdtemp(prefix="joey-tfb-pg-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        if owner:
            os.chown(home, owner.pw_uid, owner.pw_gid)
        data, log = home / "data", home / "postgres.log"
        done = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-sync"],
            capture_output=True, text=True, timeout=300, check=False, cwd=home, **run_as)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-300:]}")
        port = _free_port()
        settings = {
            "listen_addresses": HOST, "port": str(port), "unix_socket_directories": str(home),
            "shared_preload_libraries": "pg_stat_statements", "max_connections": "300",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        }
        with log.open("ab") as log_file:
            server = subprocess.Popen(
                [*_pin(cpu), str(bin_dir / "postgres"), "-D", str(data),
                 *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}"))],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=home, start_new_session=True,
                **run_as)
        try:
            asyncio.run(_ready(port, server, 60))
        except Exception as exc:
            said = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"postgres did not start: {exc}; its log: {' / '.join(said)}"
                               ) from exc
        asyncio.run(_seed(port))
        say(f"tfb: PostgreSQL {bin_dir.parent.name} on {HOST}:{port} (pid {server.pid})")
        yield Database(f"postgresql://{USER}@{HOST}:{port}/{DATABASE}", port, server.pid)
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        shutil.rmtree(home, ignore_errors=True)
