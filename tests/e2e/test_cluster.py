"""`make e2e-cluster` (python -m tests.e2e): prints what a user needs, then READY; SIGTERM stops
everything and leaves nothing behind on this machine.

It starts a cluster of its own, before the session's (this file sorts first), so that the two
snapshots of the machine compare a machine without any cluster."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.controlplane.harness import REPO_ROOT, find_binary
from tests.e2e.cluster import processes_in_cgroup, processes_in_netns

START_TIMEOUT = 600.0  # seconds: a cold start imports every image into containerd
EXPECTED = (
    "KUBECONFIG",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_CLUSTER_URI",
    "STEP_IMAGE",
    "PROMOTION_IMAGE",
    "PIPELINE_NAMESPACE",
)


def machine_state() -> dict[str, str]:
    """What a cluster could leave behind on this machine."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    mounts = "\n".join(
        " ".join(line.split()[3:5])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    cgroups = "\n".join(sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/mlpipeline-e2e-*")))
    return {
        "mounts": mounts,
        "links": run("ip", "-o", "link", "show"),
        "addresses": run("ip", "-o", "addr", "show"),
        "network namespaces": run("ip", "netns", "list"),
        "iptables": _rules(run("iptables-save")),
        "ip6tables": _rules(run("ip6tables-save")),
        "cgroups": cgroups,
    }


def _rules(saved: str) -> str:
    # Comments and packet counters change on their own.
    return "\n".join(
        re.sub(r"\[\d+:\d+\]", "", line) for line in saved.splitlines() if not line.startswith("#")
    )


def test_ready_lines_then_sigterm_leaves_nothing_behind() -> None:
    before = machine_state()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    stderr: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "READY":
                ready.set()

    def read_stderr() -> None:
        assert process.stderr is not None
        stderr.extend(process.stderr)

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    try:
        assert ready.wait(START_TIMEOUT), f"no READY: {lines} {''.join(stderr)[-3000:]}"
        values = dict(line.split("=", 1) for line in lines[:-1])
        assert [line.split("=", 1)[0] for line in lines[:-1]] == list(EXPECTED)
        assert lines[-1] == "READY"
        # The printed kubeconfig reaches the cluster, whose node is Ready.
        nodes = subprocess.run(
            [str(find_binary("kubectl")), "get", "nodes", "-o", "json"],
            env={**os.environ, "KUBECONFIG": values["KUBECONFIG"]},
            capture_output=True,
            text=True,
            check=True,
        )
        conditions = json.loads(nodes.stdout)["items"][0]["status"]["conditions"]
        assert {"type": "Ready", "status": "True"}.items() <= next(
            c for c in conditions if c["type"] == "Ready"
        ).items()
        workdir = next(
            Path(m.group(1)) for m in map(re.compile(r"logs in (\S+)").search, stderr) if m
        )
        state = json.loads((workdir / "cluster.json").read_text())
        netns, cgroup_root = int(state["netns_inode"]), str(state["cgroup_root"])
        assert processes_in_netns(netns), "the cluster's processes are not in its namespace"
        assert processes_in_cgroup(cgroup_root), "the operator's pods are not in the cgroups"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        for reader in readers:
            reader.join(timeout=10)
    assert code == 0, "".join(stderr)[-3000:]
    assert processes_in_netns(netns) == []
    assert processes_in_cgroup(cgroup_root) == []
    assert not workdir.exists()
    after = machine_state()
    for what in before:
        assert after[what] == before[what], f"{what} changed"
