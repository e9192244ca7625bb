"""Validation and compilation time on synthetic pipelines; prints medians. Run: make benchmark
(`python -m benchmarks.compile_bench`).

Each size is a chain of distinct steps, each with a retry policy and an artifact from the
previous step (see tests/unit/pipelines.py). Figures are medians over --repeat runs, measured
in-process after one warm-up run, so imports are not counted.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from mlpipeline_operator.api.constants import MAX_STEPS
from mlpipeline_operator.compiler.workflow import compile_pipeline
from mlpipeline_operator.validation import validate_document
from mlpipeline_operator.yamlio import dump
from tests.unit.pipelines import chain


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 500, MAX_STEPS])
    args = parser.parse_args()
    print(
        f"{'steps':>6} {'validate ms':>12} {'compile ms':>11} {'total ms':>9} "
        f"{'us/step':>8} {'yaml dump ms':>13} {'json KiB':>9}"
    )
    for size in args.sizes:
        doc = chain(size)

        def validate(doc: dict[str, Any] = doc) -> Any:
            pipeline, problems = validate_document(doc)
            assert pipeline is not None, problems
            return pipeline

        pipeline = validate()
        v = median_ms(validate, args.repeat)
        manifest = compile_pipeline(pipeline)
        c = median_ms(functools.partial(compile_pipeline, pipeline), args.repeat)
        d = median_ms(functools.partial(dump, manifest), args.repeat)
        kib = len(json.dumps(manifest, separators=(",", ":"))) / 1024
        total = v + c
        print(
            f"{size:>6} {v:>12.1f} {c:>11.1f} {total:>9.1f} {total / size * 1000:>8.1f} "
            f"{d:>13.1f} {kib:>9.0f}"
        )


if __name__ == "__main__":
    main()
