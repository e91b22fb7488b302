"""Real multi-node Redis topologies on loopback, for the tests that need more than one
redis-server: a Redis Cluster (3 primaries, 3 replicas) and a Sentinel setup (a primary, a
replica and 3 `redis-sentinel`), each in a temporary directory, started by `start()` and
stopped (every process, then the directory) by `close()`.

Start-up (measured on the shared 2-core machine): the cluster is ready in about 2.2 s (6
servers, `redis-cli --cluster create`, every node saying `cluster_state:ok`, every replica in
sync; replication starts at once: `repl-diskless-sync-delay 0`); the Sentinel setup in about
0.2 s (the replica in sync before the sentinels start, each sentinel seeing the replica).
Stopping either takes about 0.02 s (kill -9: nothing is worth saving).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.redis_server import free_port, redis_server_binary

#: how long a node may be silent before the others count it as failed (ms): small, so a
#: failover test is quick; large enough that a loaded machine does not fail nodes on its own
NODE_TIMEOUT_MS = 3000


def cli(port: int, *args: str, timeout: float = 10) -> str:
    """redis-cli against a port on loopback: its output (empty if it cannot connect)."""
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=timeout)
    return done.stdout


def _wait(what: str, ready: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"Redis test topology: {what} within {seconds:g} s")
        time.sleep(0.05)


class _Processes:
    def __init__(self, prefix: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # port -> process
        self.configs: dict[int, list[str]] = {}  # port -> its command line

    def spawn(self, port: int, argv: list[str]) -> None:
        self.configs[port] = argv
        self.processes[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)

    def answers(self, port: int) -> bool:
        return cli(port, "PING", timeout=2).strip() == "PONG"

    def kill(self, port: int) -> None:
        """kill -9 one process (a crash: nothing flushed, no goodbye to its peers)."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)

    def revive(self, port: int) -> None:
        """Start a killed process again, with its own directory and configuration."""
        self.spawn(port, self.configs[port])
        _wait(f"port {port} answering again", lambda: self.answers(port))

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
        for process in self.processes.values():
            process.wait(10)
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RedisClusterServers(_Processes):
    """A Redis Cluster of ``primaries`` primaries with one replica each, on loopback.
    ``url`` is a startup node for `redis.asyncio.RedisCluster.from_url`."""

    def __init__(self, primaries: int = 3) -> None:
        super().__init__("joey-redis-cluster-")
        self.binary = redis_server_binary()
        self.ports = [free_port() for _ in range(primaries * 2)]
        # the bus port explicit: the default (port + 10000) can fall outside the port range
        self.bus_ports = [free_port() for _ in self.ports]
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        # A port free_port() found can be taken before redis-server binds it (another run on
        # the machine): a node that exits at once is started again on other ports.
        for _attempt in range(3):
            if self._nodes_up():
                break
            self._kill_all()
            self.ports = [free_port() for _ in self.ports]
            self.bus_ports = [free_port() for _ in self.ports]
            self.url = f"redis://127.0.0.1:{self.ports[0]}/0"
        else:
            pytest.fail("Redis test topology: cluster nodes kept exiting at start")
        created = subprocess.run(
            ["redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        self.wait_healthy()

    def _nodes_up(self) -> bool:
        """Start every node; True when all answer, False when one exited (its port taken)."""
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            directory = self.workdir / str(port)
            directory.mkdir()
            self.spawn(port, [
                self.binary, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                "--save", "", "--dir", str(directory),
            ])
        exited: list[int] = []

        def ready(port: int) -> bool:
            if self.processes[port].poll() is not None:
                exited.append(port)
                return True
            return self.answers(port)

        for port in self.ports:
            _wait(f"cluster node {port} answering", lambda port=port: ready(port))
        return not exited

    def _kill_all(self) -> None:
        for port in list(self.processes):
            self.kill(port)

    def wait_healthy(self, seconds: float = 30) -> None:
        """Until every live node says `cluster_state:ok` and every replica is in sync."""
        _wait("every node saying cluster_state:ok", lambda: all(
            "cluster_state:ok" in cli(port, "CLUSTER", "INFO") for port in self.processes),
            seconds)
        _wait("every replica in sync", lambda: all(
            "role:master" in info or "master_link_status:up" in info
            for info in (cli(port, "INFO", "replication") for port in self.processes)),
            seconds)

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds ``key``'s slot now."""
        slot = int(cli(self.ports[0], "CLUSTER", "KEYSLOT", key).strip())
        for port in self.processes:
            info = cli(port, "INFO", "replication")
            if "role:master" not in info:
                continue
            for line in cli(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" in fields[2]:
                    for span in fields[8:]:
                        low, _, high = span.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return port
        raise LookupError(f"no primary holds slot {slot} of {key!r}")

    def replica_of(self, primary: int) -> int:
        """The port of a replica of the primary on ``primary``."""
        node_id = cli(primary, "CLUSTER", "MYID").strip()
        found: list[int] = []

        def known() -> bool:
            for line in cli(primary, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if fields[3] == node_id and "fail" not in fields[2]:
                    found.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
            return bool(found)

        _wait(f"a replica of the primary on {primary}", known, 15)
        return found[0]


class RedisSentinelServers(_Processes):
    """A primary, one replica and 3 sentinels watching them as ``service``. ``sentinels`` are
    the `(host, port)` pairs for `redis.asyncio.sentinel.Sentinel`."""

    service = "joey"

    def __init__(self) -> None:
        super().__init__("joey-redis-sentinel-")
        self.binary = redis_server_binary()
        self.primary, self.replica = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels = [("127.0.0.1", port) for port in self.sentinel_ports]

    def start(self) -> None:
        for port, extra in ((self.primary, []),
                            (self.replica, ["--replicaof", "127.0.0.1", str(self.primary)])):
            directory = self.workdir / str(port)
            directory.mkdir()
            self.spawn(port, [self.binary, "--port", str(port), "--bind", "127.0.0.1",
                              "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                              "--save", "", "--dir", str(directory),
                              *extra])
        # in sync before the sentinels start: they ask the primary for its replicas at once,
        # then only every 10 s
        _wait("the replica in sync", lambda: "master_link_status:up" in cli(
            self.replica, "INFO", "replication"))
        sentinel = shutil.which("redis-sentinel") or self.binary
        for port in self.sentinel_ports:
            config = self.workdir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.service} 10000\n")
            argv = [sentinel, str(config)]
            if sentinel == self.binary:
                argv.append("--sentinel")
            self.spawn(port, argv)
        for port in self.sentinel_ports:
            _wait(f"sentinel {port} seeing the replica", lambda port=port: str(
                self.replica) in cli(port, "SENTINEL", "REPLICAS", self.service))

    def current_primary(self) -> int:
        """The port the sentinels name as the primary now."""
        reply = cli(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                     self.service).split()
        return int(reply[1])


def skip_without_sharded_pubsub(backend: object, client: object) -> None:
    """Skip a pub/sub test on a cluster where this redis-py has no sharded pub/sub (its
    ``RedisCluster`` has no ``pubsub()``: the lowest supported redis-py). Joey refuses such a
    backend at construction, naming the fix (``test_pubsub_on_a_cluster_is_refused_...``)."""
    from redis.asyncio.cluster import RedisCluster

    from joey.channels import RedisPubSubBackend

    if (backend is RedisPubSubBackend and isinstance(client, RedisCluster)
            and not hasattr(client, "pubsub")):
        pytest.skip("this redis-py's RedisCluster has no pubsub(): sharded pub/sub needs a "
                    "newer redis-py (docs/redis-in-production.md)")
