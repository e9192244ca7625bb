"""Volumes on the real cluster, which has no dynamic provisioner: the test makes hostPath
PersistentVolumes under a temporary directory of its own. One pipeline mounts an existing claim
(a PVC the test binds to its PV): a step writes a file on it, the next reads it and fails on
any other content. Another mounts a claim template: Argo makes the claim when the run starts
(bound to a PV of the template's storage class), and deletes it when the run ends."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import apply_pipeline, eventually, pipeline, wait_status

RUN_TIMEOUT = 300.0
# Fails unless the file holds the token (argv[1]); prints what it read for the status message.
READ = """
import sys
content = open(sys.argv[2]).read()
print("read", repr(content))
sys.exit(0 if content == sys.argv[1] else 1)
"""
WRITE = "import sys; open(sys.argv[2], 'w').write(sys.argv[1])"


def _volume(name: str, directory: Path, storage_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(directory), "type": "Directory"},
        },
    }


def _write_then_read(volume: str, token: str) -> list[dict[str, Any]]:
    mount = [{"name": volume, "mountPath": "/shared"}]
    greeting = f"{{{{volumes.{volume}.path}}}}/greeting"
    return [
        {
            "name": "write",
            "command": ["python", "-c", WRITE, token, greeting],
            "volumeMounts": mount,
        },
        {
            "name": "read",
            "dependsOn": ["write"],
            "command": ["python", "-c", READ, token, greeting],
            "volumeMounts": [{**mount[0], "readOnly": True}],
        },
    ]


@pytest.fixture(scope="module")
def host_dirs() -> Iterator[tuple[Path, Path]]:
    """The directories of the two PersistentVolumes, writable by the steps' user."""
    with tempfile.TemporaryDirectory(prefix="mlpipeline-e2e-volumes-") as root:
        claim, template = Path(root, "claim"), Path(root, "template")
        for directory in (Path(root), claim, template):
            directory.mkdir(exist_ok=True)
            directory.chmod(0o777)
        yield claim, template


def test_a_step_reads_what_the_step_before_wrote_on_a_claim(
    cluster: NodeCluster, host_dirs: tuple[Path, Path]
) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    suffix = uuid.uuid4().hex[:8]
    storage_class = f"e2e-claim-{suffix}"
    kube.apply(_volume(f"e2e-claim-{suffix}", host_dirs[0], storage_class))
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shared", "namespace": PIPELINE_NAMESPACE},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class,
                "volumeName": f"e2e-claim-{suffix}",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    token = uuid.uuid4().hex
    doc = pipeline(
        cluster,
        "shared-claim",
        _write_then_read("data", token),
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
    )
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "shared-claim", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"write": "Succeeded", "read": "Succeeded"}
    assert (host_dirs[0] / "greeting").read_text() == token


def test_a_claim_template_lives_as_long_as_the_run(
    cluster: NodeCluster, host_dirs: tuple[Path, Path]
) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    suffix = uuid.uuid4().hex[:8]
    storage_class = f"e2e-scratch-{suffix}"
    kube.apply(_volume(f"e2e-scratch-{suffix}", host_dirs[1], storage_class))
    token = uuid.uuid4().hex
    doc = pipeline(
        cluster,
        "scratch-claim",
        _write_then_read("scratch", token),
        volumeClaimTemplates=[
            {
                "name": "scratch",
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": "1Gi"}},
            }
        ],
    )
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "scratch-claim", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"write": "Succeeded", "read": "Succeeded"}
    assert (host_dirs[1] / "greeting").read_text() == token
    claim = f"{status['lastRun']['name']}-scratch"  # Argo's name: <workflow>-<template>
    volume = kube.get("v1", "PersistentVolume", f"e2e-scratch-{suffix}")
    assert volume["spec"]["claimRef"]["name"] == claim  # the run's claim was bound to it

    def claim_deleted() -> bool:
        claims = kube.list_objects("v1", "PersistentVolumeClaim", PIPELINE_NAMESPACE)
        return claim not in [c["metadata"]["name"] for c in claims]

    eventually(claim_deleted, f"the run's claim {claim} deleted", timeout=60)
