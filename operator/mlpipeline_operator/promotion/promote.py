"""`mlpipeline promote`: register the run's model, decide, record the decision, move the alias.

The order of the writes keeps MLflow consistent whatever step a crash interrupts, and makes a
re-run converge to the same state:

1. find the version registered from this run and artifact path, or create it (with the
   artifact path and lineage tags in the same request); lineage tags are brought up to date;
2. decide (the run's lineage tags, the gates, and the comparison with the alias holder),
   touching nothing;
3. tag the version with the decision and its reason;
4. only then, and only when Promoted, move the alias.

A crash after 3 leaves a version tagged Promoted that does not hold the alias yet: the re-run
finds the same version, reaches the same decision and moves the alias. The alias never points
to a version that failed its gates, because it is moved last and only on a pass.
"""

from __future__ import annotations

import sys
from typing import TextIO

from mlpipeline_operator.promotion.decision import (
    Comparison,
    Decision,
    Holder,
    check_lineage,
    compare,
    decide,
    evaluate_gates,
)
from mlpipeline_operator.promotion.errors import ExitCode, PromotionFailure
from mlpipeline_operator.promotion.outputs import record_failure, write_decision
from mlpipeline_operator.promotion.registry import (
    TAG_DECISION,
    TAG_PREFIX,
    TAG_REASON,
    Registry,
    mlflow_http_settings,
)
from mlpipeline_operator.promotion.request import PromotionRequest
from mlpipeline_operator.promotion.retry import RetryPolicy

PROG = "mlpipeline promote"


def lineage_tags(request: PromotionRequest) -> dict[str, str]:
    """The `--lineage KEY=VALUE` items as model version tags: mlpipeline.KEY = VALUE."""
    return {f"{TAG_PREFIX}{key}": value for key, value in request.lineage.items() if value}


def decide_and_record(request: PromotionRequest, registry: Registry) -> Decision:
    """The whole promotion against MLflow (see the module's docstring for the order)."""
    run = registry.get_run(request.run_id.strip())
    aliases = registry.ensure_registered_model(request.model)
    version, _created = registry.find_or_register(
        request.model, run, request.artifact_path, lineage_tags(request)
    )
    try:
        registry.set_tags(request.model, version, lineage_tags(request))
        gates = evaluate_gates(request.gates, run.metrics)
        comparison: Comparison | None = None
        rule = request.must_beat
        if rule is not None:
            holder_version = aliases.get(rule.alias)
            holder: Holder | None = None
            if holder_version == version.version:
                holder = Holder(version.version, run.run_id, run.metrics.get(rule.metric))
            elif holder_version is not None:
                holder = registry.holder(request.model, holder_version, rule.metric)
            comparison = compare(rule, run.metrics, holder, version.version)
        lineage = check_lineage(run.tags, lineage_tags(request))
        decision = decide(request.model, version.version, request.alias, gates, comparison, lineage)
        holds_alias = aliases.get(request.alias) == version.version
        if not decision.promoted and holds_alias:
            # Gates changed since this version was promoted: say so, but leave the alias (taking
            # it away would leave the alias pointing nowhere, which is for a person to decide).
            decision = Decision(
                decision.decision,
                decision.model,
                decision.version,
                None,
                f"{decision.reason}; this version still holds alias {request.alias} "
                "from an earlier promotion",
                decision.metrics,
                decision.lineage,
            )
        registry.set_tags(
            request.model, version, {TAG_DECISION: decision.decision, TAG_REASON: decision.reason}
        )
        if decision.promoted and not holds_alias:
            registry.set_alias(request.model, request.alias, version.version)
    except PromotionFailure as failure:
        failure.version = version.version
        raise
    return decision


def promote(
    request: PromotionRequest,
    policy: RetryPolicy,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the promotion; print a summary; write the output files; return the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def log(message: str) -> None:
        print(f"{PROG}: {message}", file=err, flush=True)

    try:
        with mlflow_http_settings(policy):
            decision = decide_and_record(request, Registry(request.tracking_uri, policy, log=log))
    except PromotionFailure as failure:
        return record_failure(request, failure, log)
    print(decision.summary(request.alias), file=out, flush=True)
    if not write_decision(request, decision, log):
        return int(ExitCode.INTERNAL)
    if decision.decision == "Rejected" and request.fail_on_reject:
        return int(ExitCode.REJECTED)
    return int(ExitCode.DECIDED)
