"""Where the tests find the repository's files and Argo's reference data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "manifests" / "samples"
GOLDEN = REPO / "tests" / "golden"
CRD_FILE = REPO / "crds" / "mlops.gitops.dev_mlpipelines.yaml"


def argo_reference_dir() -> Path:
    """Argo Workflows' schema and CRDs: $ARGO_REFERENCE_DIR, else ../shared/argo beside the repo."""
    candidates = [
        os.environ.get("ARGO_REFERENCE_DIR"),
        REPO.parent / "shared" / "argo",
        "/work/shared/argo",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "workflow-schema.json").is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "Argo's reference data (workflow-schema.json and CRDs) not found: set ARGO_REFERENCE_DIR"
    )


def sample_files() -> list[Path]:
    """Every pipeline with a golden render: the samples and the examples' pipelines."""
    return sorted(SAMPLES.glob("*.yaml")) + sorted((REPO / "examples").glob("*/pipeline.yaml"))


def golden_file(sample: Path) -> Path:
    """Where a pipeline's render is kept: tests/golden/<sample>.yaml, example-<name>.yaml."""
    if sample.parent.parent == REPO / "examples":
        return GOLDEN / f"example-{sample.parent.name}.yaml"
    return GOLDEN / sample.name
