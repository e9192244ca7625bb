"""Argo's controller and executor on the real node, with a hand-written Workflow (not the
operator's): an artifact through the S3 store, an output parameter read from a file, and a
retry after a failure."""

from __future__ import annotations

from typing import Any

from tests.e2e.cluster import PIPELINE_NAMESPACE, S3_BUCKET, NodeCluster
from tests.e2e.workflows import wait_finished


def smoke_workflow(image: str) -> dict[str, Any]:
    def python(code: str) -> dict[str, Any]:
        return {"image": image, "command": ["python3", "-c", code]}

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "smoke-", "namespace": PIPELINE_NAMESPACE},
        "spec": {
            # The cluster runs Argo's executor containers as non-root (as a restricted namespace
            # needs: docs/argo-workflows.md), so the pod names its user, as the operator does.
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": "write", "template": "write"},
                            {
                                "name": "read",
                                "template": "read",
                                "dependencies": ["write"],
                                "arguments": {
                                    "artifacts": [
                                        {
                                            "name": "text",
                                            "from": "{{tasks.write.outputs.artifacts.text}}",
                                        }
                                    ]
                                },
                            },
                            {
                                "name": "flaky",
                                "template": "flaky",
                                "dependencies": ["read"],
                                "arguments": {
                                    "parameters": [
                                        {
                                            "name": "words",
                                            "value": "{{tasks.read.outputs.parameters.words}}",
                                        }
                                    ]
                                },
                            },
                        ]
                    },
                },
                {
                    "name": "write",
                    "container": python(
                        "import pathlib; p = pathlib.Path('/tmp/out/text.txt'); "
                        "p.parent.mkdir(); p.write_text('four words from write')"
                    ),
                    "outputs": {"artifacts": [{"name": "text", "path": "/tmp/out/text.txt"}]},
                },
                {
                    "name": "read",
                    "inputs": {"artifacts": [{"name": "text", "path": "/tmp/in/text.txt"}]},
                    "container": python(
                        "import pathlib; words = pathlib.Path('/tmp/in/text.txt').read_text(); "
                        "pathlib.Path('/tmp/words').write_text(str(len(words.split())))"
                    ),
                    "outputs": {
                        "parameters": [{"name": "words", "valueFrom": {"path": "/tmp/words"}}]
                    },
                },
                {
                    # Fails on its first attempt ({{retries}} is 0), succeeds on the retry.
                    "name": "flaky",
                    "inputs": {"parameters": [{"name": "words"}]},
                    "retryStrategy": {
                        "limit": 2,
                        "retryPolicy": "Always",
                        "backoff": {"duration": "1s", "factor": 1},
                    },
                    "container": python(
                        "import sys; assert {{inputs.parameters.words}} == 4; "
                        "sys.exit(1 if {{retries}} == 0 else 0)"
                    ),
                },
            ],
        },
    }


def test_artifact_parameter_and_retry(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    created = kube.create(smoke_workflow(cluster.images["STEP_IMAGE"]))
    name = created["metadata"]["name"]

    workflow = wait_finished(kube, PIPELINE_NAMESPACE, name, timeout=300)

    status = workflow["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    nodes = list(status["nodes"].values())
    by_display = {node["displayName"]: node for node in nodes}
    assert by_display["read"]["outputs"]["parameters"][0]["value"] == "4"
    retry = next(n for n in nodes if n["displayName"] == "flaky" and n["type"] == "Retry")
    attempts = sorted(
        (status["nodes"][child] for child in retry["children"]), key=lambda n: n["name"]
    )
    assert [a["phase"] for a in attempts] == ["Failed", "Succeeded"]
    assert retry["phase"] == "Succeeded"

    # The artifact's object is in the store (versitygw keeps objects as files).
    stored = by_display["write"]["outputs"]["artifacts"][0]["s3"]["key"]
    assert stored.startswith(f"{PIPELINE_NAMESPACE}/{name}/")
    assert (cluster.s3_root / S3_BUCKET / stored).is_file()
