"""Where the tests find the repository's files and Argo's reference data."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "crds" / "mlops.gitops.dev_mlpipelines.yaml"

# Argo Workflows' own files, of the version the Go modules build (hack/refresh-argo-reference.sh).
ARGO_REFERENCE = REPO / "third_party" / "argo-workflows"
ARGO_SCHEMA = ARGO_REFERENCE / "api" / "jsonschema" / "schema.json"
ARGO_CRD_DIR = ARGO_REFERENCE / "manifests" / "base" / "crds" / "full"
# The Go modules built from github.com/argoproj/argo-workflows/v4 (hack/build-binaries.sh).
ARGO_GO_MODULES = (
    REPO / "tests" / "controlplane" / "go" / "argo-validate",
    REPO / "tests" / "controlplane" / "go" / "argo",
)
