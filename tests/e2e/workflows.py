"""Waiting on Argo Workflows in the end-to-end tier."""

from __future__ import annotations

from typing import Any

from tests.controlplane.harness import Kube

FINISHED = ("Succeeded", "Failed", "Error")
WORKFLOW = ("argoproj.io/v1alpha1", "Workflow")


def wait_finished(kube: Kube, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    """The Workflow once Argo has given it a finished phase; on a timeout, an error that
    shows its status."""

    def finished(workflow: dict[str, Any] | None) -> bool:
        return bool(workflow) and (workflow or {}).get("status", {}).get("phase") in FINISHED

    try:
        workflow = kube.wait_for(*WORKFLOW, name, namespace, finished, timeout=timeout, interval=1)
    except TimeoutError:
        status = kube.get(*WORKFLOW, name, namespace).get("status")
        message = f"Workflow {namespace}/{name} unfinished after {timeout:g}s: {status}"
        raise AssertionError(message) from None
    assert workflow is not None
    return workflow
