"""The contract between the compiler and `mlpipeline promote`: one request, as command-line flags.

The compiler writes a `PromotionRequest` into the promotion task's arguments with `to_args`; the
promotion step reads it back with `parse_args`. Both sides use this module, so they cannot drift.
Credentials are never part of the request: they come from the environment.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from mlpipeline_operator.api.constants import ANNOTATION_GIT_REVISION
from mlpipeline_operator.api.models import Gate, MLPipeline, MustBeat
from mlpipeline_operator.cli_types import ArgumentParser
from mlpipeline_operator.messages import quoted
from mlpipeline_operator.promotion.retry import add_retry_arguments
from mlpipeline_operator.validation import problems_from_pydantic

# Files written by the promotion step, exposed as the Workflow's output parameters.
OUTPUT_DIR = "/tmp/mlpipeline-promotion"
OUTPUT_NAMES = ("decision", "version", "alias", "reason", "metrics", "lineage")

# METRIC OP VALUE, spaces allowed around each: a metric has no comparison sign (the models'
# GATE_METRIC_PATTERN, as MLflow's metric names), the value is a decimal number.
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[^<>=]*?)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?P<value>[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)\s*$"
)


def format_number(value: float) -> str:
    """A threshold as text: short ("0.95", "200") yet exact (never rounded to 6 digits)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def format_gate(gate: Gate) -> str:
    """A gate as one argument: "auc>=0.95"."""
    return f"{gate.metric}{gate.op}{format_number(gate.value)}"


def parse_gate(text: str) -> Gate:
    """The inverse of `format_gate`; "auc >= 0.95" reads as written. The gate is checked by the
    same model as `spec.promotion.gates`, so the command accepts what the spec does."""
    match = _GATE_RE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"bad gate {quoted(text)}: write METRIC OP VALUE with OP one of >=, >, <=, <, == "
            "and VALUE a number, e.g. auc>=0.95"
        )
    try:
        return Gate.model_validate(
            {"metric": match["metric"], "op": match["op"], "value": float(match["value"])}
        )
    except ValidationError as error:
        problems = problems_from_pydantic(error)
        raise argparse.ArgumentTypeError(
            f"bad gate {quoted(text)}: " + "; ".join(str(p) for p in problems)
        ) from None


def format_must_beat(must_beat: MustBeat) -> str:
    """The champion/challenger rule as one argument: "champion:auc:higher"."""
    direction = "higher" if must_beat.higher_is_better else "lower"
    return f"{must_beat.alias}:{must_beat.metric}:{direction}"


def parse_must_beat(text: str) -> MustBeat:
    """The inverse of `format_must_beat`."""
    alias, _, rest = text.partition(":")
    metric, _, direction = rest.rpartition(":")
    if not alias or not metric or direction not in ("higher", "lower"):
        raise argparse.ArgumentTypeError(
            f'bad --must-beat "{text}": write ALIAS:METRIC:higher or ALIAS:METRIC:lower'
        )
    return MustBeat(alias=alias, metric=metric, higher_is_better=direction == "higher")


def _lineage_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'bad --lineage "{text}": write KEY=VALUE')
    return key, value


@dataclass(frozen=True)
class PromotionRequest:
    """Everything the promotion step needs to decide, except credentials."""

    tracking_uri: str
    model: str
    run_id: str
    artifact_path: str = "model"
    alias: str = "champion"
    gates: tuple[Gate, ...] = ()
    must_beat: MustBeat | None = None
    fail_on_reject: bool = False
    # Tags that tie the model version to what produced it (namespace, pipeline, generation...).
    lineage: dict[str, str] = field(default_factory=dict)
    output_dir: str | None = None

    def to_args(self) -> list[str]:
        """The request as `mlpipeline promote` flags."""
        args = [
            "--tracking-uri",
            self.tracking_uri,
            "--model",
            self.model,
            "--run-id",
            self.run_id,
            "--artifact-path",
            self.artifact_path,
            "--alias",
            self.alias,
        ]
        for gate in self.gates:
            args += ["--gate", format_gate(gate)]
        if self.must_beat is not None:
            args += ["--must-beat", format_must_beat(self.must_beat)]
        if self.fail_on_reject:
            args.append("--fail-on-reject")
        for key, value in self.lineage.items():
            args += ["--lineage", f"{key}={value}"]
        if self.output_dir is not None:
            args += ["--output-dir", self.output_dir]
        return args


def request_for(
    pipeline: MLPipeline,
    *,
    tracking_uri: str,
    run_id: str,
    namespace: str,
    workflow: str,
    output_dir: str,
) -> PromotionRequest:
    """The request of a pipeline's promotion step, the same for a Workflow and a local run.

    `run_id`, `namespace` and `workflow` are values or Argo variables (`{{workflow.name}}`).
    """
    promotion = pipeline.spec.promotion
    assert promotion is not None  # guaranteed by validation
    meta = pipeline.metadata
    lineage = {
        "namespace": namespace,
        "pipeline": meta.name,
        "generation": str(meta.generation or 1),
        "workflow": workflow,
    }
    revision = meta.annotations.get(ANNOTATION_GIT_REVISION)
    if revision:
        lineage["git-revision"] = revision
    return PromotionRequest(
        tracking_uri=tracking_uri,
        model=promotion.model,
        run_id=run_id,
        artifact_path=promotion.artifact_path,
        alias=promotion.alias,
        gates=tuple(promotion.gates),
        must_beat=promotion.must_beat,
        fail_on_reject=promotion.fail_on_reject,
        lineage=lineage,
        output_dir=output_dir,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `mlpipeline promote` (`retry.retry_from_namespace` reads the retry flags)."""
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking URI")
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--run-id", required=True, help="MLflow run that logged the model")
    parser.add_argument("--artifact-path", default="model", help="model path inside the run")
    parser.add_argument("--alias", default="champion", help="alias moved to a promoted version")
    parser.add_argument(
        "--gate",
        dest="gates",
        action="append",
        type=parse_gate,
        default=[],
        metavar="METRIC>=VALUE",
        help="a quality gate (repeatable)",
    )
    parser.add_argument(
        "--must-beat",
        type=parse_must_beat,
        metavar="ALIAS:METRIC:higher|lower",
        help="require beating the version that holds ALIAS on METRIC",
    )
    parser.add_argument(
        "--fail-on-reject", action="store_true", help="exit non-zero when the model is rejected"
    )
    parser.add_argument(
        "--lineage",
        action="append",
        type=_lineage_item,
        default=[],
        metavar="KEY=VALUE",
        help="a lineage tag for the model version (repeatable)",
    )
    parser.add_argument("--output-dir", help="directory for the decision files")
    # How hard to try to reach MLflow: operational settings, not part of the request.
    add_retry_arguments(parser)


def from_namespace(ns: argparse.Namespace) -> PromotionRequest:
    """The request that `add_arguments` parsed."""
    return PromotionRequest(
        tracking_uri=ns.tracking_uri,
        model=ns.model,
        run_id=ns.run_id,
        artifact_path=ns.artifact_path,
        alias=ns.alias,
        gates=tuple(ns.gates),
        must_beat=ns.must_beat,
        fail_on_reject=ns.fail_on_reject,
        lineage=dict(ns.lineage),
        output_dir=ns.output_dir,
    )


def parse_args(argv: Sequence[str]) -> PromotionRequest:
    """Parse `mlpipeline promote` flags (argparse exits with a usage message on bad input)."""
    parser = ArgumentParser(prog="mlpipeline promote")
    add_arguments(parser)
    return from_namespace(parser.parse_args(argv))
