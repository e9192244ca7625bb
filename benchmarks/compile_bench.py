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

from hera.workflows.models.io.argoproj.workflow import v1alpha1 as argo
from hera.workflows.models.io.k8s.api.core import v1 as core
from hera.workflows.models.io.k8s.apimachinery.pkg.apis.meta import v1 as meta

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


def hera_reference(size: int) -> dict[str, Any]:
    """The floor: a minimal Workflow of `size` steps from hera's models (a container template
    and a DAG task per step), built and dumped; the same work any model-based compiler does."""
    tasks = [
        argo.DAGTask(name=f"s{i}", template=f"s{i}", dependencies=[f"s{i - 1}"] if i else None)
        for i in range(size)
    ]
    templates = [
        argo.Template(name=f"s{i}", container=core.Container(image="img", command=["run", str(i)]))
        for i in range(size)
    ]
    workflow = argo.Workflow(
        api_version="argoproj.io/v1alpha1",
        kind="Workflow",
        metadata=meta.ObjectMeta(name="reference"),
        spec=argo.WorkflowSpec(
            entrypoint="main",
            templates=[argo.Template(name="main", dag=argo.DAGTemplate(tasks=tasks)), *templates],
        ),
    )
    result: dict[str, Any] = workflow.model_dump(by_alias=True, exclude_none=True, mode="json")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 500, MAX_STEPS])
    args = parser.parse_args()
    print(
        f"{'steps':>6} {'validate ms':>12} {'compile ms':>11} {'total ms':>9} "
        f"{'us/step':>8} {'hera floor ms':>14} {'total/floor':>12} {'yaml dump ms':>13} "
        f"{'json KiB':>9}"
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
        floor = median_ms(functools.partial(hera_reference, size), args.repeat)
        d = median_ms(functools.partial(dump, manifest), args.repeat)
        kib = len(json.dumps(manifest, separators=(",", ":"))) / 1024
        total = v + c
        print(
            f"{size:>6} {v:>12.1f} {c:>11.1f} {total:>9.1f} {total / size * 1000:>8.1f} "
            f"{floor:>14.1f} {total / floor:>12.1f} {d:>13.1f} {kib:>9.0f}"
        )


if __name__ == "__main__":
    main()
