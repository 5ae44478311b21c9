"""A real local Redis Cluster: three redis-server nodes on free loopback ports, joined by `redis-cli --cluster`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.support import free_port

__all__ = ["RedisClusterNodes", "run_redis_cluster"]

NODES = 3


class RedisClusterNodes:
    """Three primaries sharing the 16,384 slots; `nodes[i].restart()` restarts one in place (its nodes.conf kept)."""

    def __init__(self, nodes: list[RedisServer], cli: str) -> None:
        self.nodes = nodes
        self.cli = cli

    @property
    def url(self) -> str:
        """A `redis://` URL of one node, as redis-py's RedisCluster.from_url takes it (it discovers the others)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def create(self, timeout: float = 30.0) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout[-2000:]}\n{created.stderr[-2000:]}")
        self.wait_until_ok(timeout)

    def wait_until_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [self._cluster_info(node).get("cluster_state") for node in self.nodes]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.05)
        pytest.fail(f"the cluster did not reach cluster_state:ok within {timeout}s")

    def _cluster_info(self, node: RedisServer) -> dict[str, str]:
        answer = subprocess.run(
            [self.cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=5
        )
        return dict(line.strip().split(":", 1) for line in answer.stdout.splitlines() if ":" in line)


@contextlib.contextmanager
def run_redis_cluster(directory: Path) -> Iterator[RedisClusterNodes]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail("redis-server or redis-cli is missing: run make test, which installs them")
    nodes = []
    for index in range(NODES):
        folder = directory / f"node{index}"
        folder.mkdir()
        arguments = ["--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf")]
        # The bus port defaults to the port + 10,000, which a free port above 55,535 cannot have: pick one too.
        arguments += ["--cluster-node-timeout", "2000", "--cluster-port", str(free_port())]
        nodes.append(RedisServer(server, folder, extra_arguments=arguments))
    try:
        for node in nodes:
            node.start()
        cluster = RedisClusterNodes(nodes, cli)
        cluster.create()
        yield cluster
    finally:
        for node in nodes:
            node.stop()
