"""A real Sentinel deployment on loopback: one master, one replica, three sentinels (quorum 2).

Debian's redis-server and redis-sentinel, each on a free 127.0.0.1 port, with timings short enough that a
failover takes seconds (down-after 1 s, failover-timeout 5 s) instead of the defaults' 30 s and 3 min.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq.embedded_redis import find_redis_server, free_port

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# What docs/reliability.md recommends, applied to the master here: it refuses writes when no replica has
# acknowledged within 5 s, which bounds what a failover can lose to that window. Not on the replica: with
# only two data nodes the promoted replica has no replica of its own and would refuse every write.
MASTER_REPLICATION = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "5"]


def find_redis_sentinel() -> str | None:
    return shutil.which("redis-sentinel")


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001 - test support
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


class SentinelCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _server(self, name: str, port: int, extra: list[str]) -> None:
        data = self.directory / name
        data.mkdir(exist_ok=True)
        args = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                "--loglevel", "notice", "--logfile", str(data / "redis.log"), *extra]
        self.processes[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, timeout: float = 30.0) -> str:
        sentinel_binary = find_redis_sentinel()
        if sentinel_binary is None:
            raise RuntimeError("redis-sentinel not found (apt-get install redis-sentinel)")
        self._server("master", self.master_port, MASTER_REPLICATION)
        self._server("replica", self.replica_port, ["--replicaof", "127.0.0.1", str(self.master_port)])
        for index, port in enumerate(self.sentinel_ports):
            data = self.directory / f"sentinel-{index}"
            data.mkdir(exist_ok=True)
            config = data / "sentinel.conf"  # sentinels rewrite their config file, so each has its own
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {data}\nlogfile {data / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            self.processes[f"sentinel-{index}"] = subprocess.Popen(
                [sentinel_binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        replica = Redis(port=self.replica_port, socket_timeout=1)
        _wait(lambda: replica.info("replication").get("master_link_status") == "up", timeout,
              "the replica to sync with the master")
        # A failover needs a quorum that knows the replica and each other (hello messages every 2 s).
        for port in self.sentinel_ports:
            sentinel = Redis(port=port, socket_timeout=1, decode_responses=True)
            _wait(lambda s=sentinel: len(s.sentinel_sentinels(SERVICE)) == 2 and len(s.sentinel_slaves(SERVICE)) == 1,
                  timeout, f"sentinel on port {port} to know the other sentinels and the replica")
        return self.url

    def master_address(self) -> tuple[str, int]:
        for port in self.sentinel_ports:
            try:
                host, master_port = Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(SERVICE)
                return (host.decode() if isinstance(host, bytes) else host), int(master_port)
            except (RedisError, TypeError):
                continue
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> None:
        process = self.processes["master"]
        process.kill()  # SIGKILL: no shutdown save, no goodbye to the replica
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def logs(self) -> str:
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(
            self.directory.glob("*/*.log")))
