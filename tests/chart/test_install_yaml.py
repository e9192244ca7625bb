"""`kubectl apply --server-side -f manifests/install.yaml` on a fresh cluster, with the real
kubectl and no discovery cache: one pass installs everything (nothing in the file is of a
kind whose CRD the same file creates; the operator creates its peering object itself). The
cluster has the namespace of Argo's controller, as Argo Workflows' install makes it: the file
puts the Role of the step caches there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hack.delivery_files import INSTALL_YAML
from tests.controlplane.harness import find_binary, running_control_plane

pytestmark = pytest.mark.integration


def test_one_pass_on_a_fresh_cluster(tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    with running_control_plane(install_project_crds=False, install_argo_crds=False) as plane:
        plane.kube.create_namespace("argo")
        applied = subprocess.run(
            [
                str(find_binary("kubectl")),
                f"--kubeconfig={plane.kubeconfig}",
                f"--cache-dir={tmp_path / 'empty-cache'}",
                "apply",
                "--server-side",
                f"--filename={INSTALL_YAML}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        for doc in docs:
            meta = doc["metadata"]
            assert plane.kube.get(
                doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace")
            )
