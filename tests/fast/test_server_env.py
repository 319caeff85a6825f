"""The e2e harness: each server process, and each worker of a cluster, has an
environment of its own, whatever `env` it was built from (a test that names one
worker, or slows one down, must not change the others)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BACKENDS, ServerProcess


def test_servers_built_from_one_env_do_not_share_it(tmp_path: Path) -> None:
    env = {"RUNLANE_ABANDONED_NODE_GRACE": "1"}
    first = ServerProcess(tmp_path / "first", env=env)
    second = ServerProcess(tmp_path / "second", env=env)
    first.env["RUNLANE_WORKER_NAME"] = "first"
    assert second.env == {"RUNLANE_ABANDONED_NODE_GRACE": "1"}
    assert env == {"RUNLANE_ABANDONED_NODE_GRACE": "1"}


def test_cluster_workers_do_not_share_their_env(tmp_path: Path) -> None:
    if "postgres" not in BACKENDS:
        pytest.skip("RUNLANE_TEST_BACKENDS leaves out postgres (a Cluster creates "
                    "its database when it is built)")
    from cluster import Cluster, require_services

    require_services(redis=False, tests="the cluster harness test")
    env = {"RUNLANE_ABANDONED_NODE_GRACE": "1"}
    cluster = Cluster(tmp_path, 3, env=env)  # built, never started
    try:
        for index, worker in enumerate(cluster.workers):
            worker.env["RUNLANE_WORKER_NAME"] = f"w{index}"
        assert [w.env for w in cluster.workers] == [
            {"RUNLANE_ABANDONED_NODE_GRACE": "1", "RUNLANE_WORKER_NAME": f"w{i}"}
            for i in range(3)]
        assert env == {"RUNLANE_ABANDONED_NODE_GRACE": "1"}
    finally:
        cluster.close()
