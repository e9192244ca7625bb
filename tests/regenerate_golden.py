"""`make golden`: render every sample and example pipeline into tests/golden/."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from mlpipeline_operator import cli
from tests.paths import GOLDEN, golden_file, sample_files


def main() -> None:
    for stale in GOLDEN.glob("*.yaml"):
        stale.unlink()
    for sample in sample_files():
        out = io.StringIO()
        with redirect_stdout(out):
            if cli.main(["render", str(sample)]) != 0:
                raise SystemExit(f"{sample} does not render")
        golden_file(sample).write_text(out.getvalue())
        print(f"{golden_file(sample).relative_to(GOLDEN.parent.parent)}")


if __name__ == "__main__":
    main()
