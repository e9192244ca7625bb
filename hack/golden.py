"""`make golden`: render every sample and example pipeline into tests/golden/.

`python -m hack.golden` rewrites the directory; tests/unit/test_compiler.py fails when a render
is stale, and the contract and integration tiers check every render against Argo.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from mlpipeline_operator import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "manifests" / "samples"
GOLDEN = REPO / "tests" / "golden"


def sample_files() -> list[Path]:
    """Every pipeline with a golden render: the samples and the examples' pipelines."""
    return sorted(SAMPLES.glob("*.yaml")) + sorted((REPO / "examples").glob("*/pipeline.yaml"))


def golden_file(sample: Path) -> Path:
    """Where a pipeline's render is kept: tests/golden/<sample>.yaml, example-<name>.yaml."""
    if sample.parent.parent == REPO / "examples":
        return GOLDEN / f"example-{sample.parent.name}.yaml"
    return GOLDEN / sample.name


def main() -> None:
    for stale in GOLDEN.glob("*.yaml"):
        stale.unlink()
    for sample in sample_files():
        out = io.StringIO()
        with redirect_stdout(out):
            if cli.main(["render", str(sample)]) != 0:
                raise SystemExit(f"{sample} does not render")
        golden_file(sample).write_text(out.getvalue())
        print(f"{golden_file(sample).relative_to(REPO)}")


if __name__ == "__main__":
    main()
