"""A small valid pipeline document for tests to change one thing at a time."""

from __future__ import annotations

import copy
from typing import Any

_BASE: dict[str, Any] = {
    "apiVersion": "mlops.gitops.dev/v1alpha1",
    "kind": "MLPipeline",
    "metadata": {"name": "demo", "namespace": "ml", "generation": 3},
    "spec": {
        "image": "registry.example.com/demo:1",
        "parameters": [{"name": "lr", "value": "0.1"}],
        "steps": [
            {
                "name": "extract",
                "command": ["extract", "--out", "{{outputs.artifacts.raw.path}}"],
                "outputs": {"artifacts": [{"name": "raw", "path": "/data/raw"}]},
            },
            {
                "name": "train",
                "command": [
                    "train",
                    "--lr",
                    "{{pipeline.parameters.lr}}",
                    "--data",
                    "{{inputs.artifacts.raw.path}}",
                    "--run-id",
                    "{{outputs.parameters.run_id.path}}",
                ],
                "inputs": {
                    "artifacts": [{"name": "raw", "from": "extract.raw", "path": "/data/raw"}]
                },
                "outputs": {"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
            },
            {
                "name": "evaluate",
                "command": ["evaluate", "{{inputs.parameters.run_id}}"],
                "inputs": {"parameters": [{"name": "run_id", "from": "train.run_id"}]},
            },
        ],
        "promotion": {
            "model": "demo",
            "from": {"step": "train", "parameter": "run_id"},
            "gates": [{"metric": "auc", "op": ">=", "value": 0.9}],
        },
        "mlflow": {"trackingUri": "http://mlflow:5000", "credentialsSecret": "mlflow"},
    },
}


def pipeline() -> dict[str, Any]:
    """A fresh copy of the valid base document."""
    return copy.deepcopy(_BASE)


def chain(n: int, command_length: int = 0) -> dict[str, Any]:
    """A pipeline of n distinct steps, each taking the previous step's artifact."""
    doc = pipeline()
    doc["spec"].pop("promotion")
    padding = "x" * command_length
    steps: list[dict[str, Any]] = []
    for i in range(n):
        step: dict[str, Any] = {
            "name": f"step-{i}",
            "command": [
                "python",
                "-m",
                f"job.step{i}",
                "--out",
                "{{outputs.artifacts.out.path}}",
                *([padding] if padding else []),
            ],
            "outputs": {"artifacts": [{"name": "out", "path": f"/data/out-{i}"}]},
            "retry": {"limit": i % 4, "policy": "OnFailure"},
        }
        if i:
            step["inputs"] = {
                "artifacts": [{"name": "in", "from": f"step-{i - 1}.out", "path": "/data/in"}]
            }
            step["command"] += ["--in", "{{inputs.artifacts.in.path}}"]
        steps.append(step)
    doc["spec"]["steps"] = steps
    return doc
