"""The `mlpipeline` command: validate, render, run, promote, operator, crd.

Each command imports what it uses only, when it runs (`validate` not the compiler, `render` not
MLflow or kopf), so CI pays only for what it uses. Exit codes: 0 success, 1 invalid input,
2 bad usage, 3 a missing extra (the line names the `pip install` that adds it); `promote` has
its own (docs/promotion.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlpipeline_operator import __version__
from mlpipeline_operator.cli_types import USAGE_EXIT_CODE, ArgumentParser, positive_int
from mlpipeline_operator.perf import long_lived

EXIT_MISSING_EXTRA = 3


def cmd_validate(args: argparse.Namespace) -> int:
    with long_lived():  # imports: see `main`
        from mlpipeline_operator.loading import load_pipelines
        from mlpipeline_operator.policy import PolicyError, parse_policy, policy_problems

    policy = None
    if args.policy is not None:
        try:
            policy = parse_policy(Path(args.policy).read_text(encoding="utf-8"), args.policy)
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            print(
                f"mlpipeline validate: error: {args.policy}: cannot read: {reason}", file=sys.stderr
            )
            return 2
        except PolicyError as error:
            print(f"mlpipeline validate: error: {error}", file=sys.stderr)
            return 2
    failed = False
    for path in args.files:
        loaded = load_pipelines(path)
        for warning in loaded.warnings:
            print(warning, file=sys.stderr)
        problems = list(loaded.problems)
        for pipeline in loaded.pipelines:
            if policy is None:
                break
            namespace = args.namespace or pipeline.metadata.namespace
            if namespace is None:
                problems.append(
                    f"{loaded.label}: metadata.namespace: unset; give --namespace to check the "
                    "pipeline against the tenancy policy"
                )
                continue
            problems += [
                f"{loaded.label}: {p}" for p in policy_problems(pipeline, namespace, policy)
            ]
        if problems:
            failed = True
            print("\n".join(problems))
        elif not args.quiet:
            count = len(loaded.pipelines)
            print(f"{loaded.label}: valid ({count} pipeline{'s' if count != 1 else ''})")
    return 1 if failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    with long_lived():  # imports: see `main`
        from mlpipeline_operator import yamlio
        from mlpipeline_operator.api.constants import ANNOTATION_RUN_AT
        from mlpipeline_operator.compiler.workflow import CompileOptions, compile_pipeline
        from mlpipeline_operator.core import InvalidPipeline
        from mlpipeline_operator.loading import load_pipelines

    loaded = load_pipelines(args.file)
    if loaded.problems:
        print("\n".join(loaded.problems), file=sys.stderr)
        return 1
    options = (
        CompileOptions(promotion_image=args.promotion_image)
        if args.promotion_image
        else CompileOptions()
    )
    manifests: list[dict[str, Any]] = []
    for pipeline in loaded.pipelines:
        meta = pipeline.metadata
        if pipeline.spec.suspend:
            print(
                f"{loaded.label}: note: {meta.name}: spec.suspend is true: the operator "
                "submits no run while it is; this is the run it would submit otherwise",
                file=sys.stderr,
            )
        if args.namespace:
            meta.namespace = args.namespace
        if args.generation is not None:
            meta.generation = args.generation
        # With the run-at annotation, the operator also creates the run for that time.
        run_at = meta.annotations.get(ANNOTATION_RUN_AT)
        at_options = [] if run_at is None else [replace(options, scheduled_time=run_at)]
        try:
            for compile_options in [options, *at_options]:
                manifests.append(compile_pipeline(pipeline, compile_options))
        except InvalidPipeline as error:
            print("\n".join(f"{loaded.label}: {p}" for p in error.problems), file=sys.stderr)
            return 1
    if args.output == "json":
        out: Any = (
            manifests[0]
            if len(manifests) == 1
            else {"apiVersion": "v1", "kind": "List", "items": manifests}
        )
        print(json.dumps(out, indent=2))
    else:
        sys.stdout.write(yamlio.dump_all(manifests))
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    with long_lived():  # imports: see `main`
        from mlpipeline_operator.api.crd import render_crd
        from mlpipeline_operator.api.peering import render_peering_crds

    sys.stdout.write(render_peering_crds() if args.peering else render_crd())
    return 0


def missing_extra(extra: str, error: ImportError) -> str:
    """Why a command cannot run without an extra of the package, and how to install it
    (`error` is re-raised when it is not about a dependency)."""
    package = (error.name or "").partition(".")[0]
    if not package or package == "mlpipeline_operator":
        raise error
    return (
        f'the "{extra}" extra is not installed (no module named {package}): '
        f"pip install 'mlpipeline-operator[{extra}]'"
    )


def cmd_operator(args: argparse.Namespace) -> int:
    from mlpipeline_operator.reconcile.config import config_error, from_arguments

    config = from_arguments(args)
    if (problem := config_error(config)) is not None:
        print(f"mlpipeline operator: error: {problem}", file=sys.stderr)
        return USAGE_EXIT_CODE
    try:
        # Imported here: kopf and the Kubernetes client are needed by this command only.
        with long_lived():  # imports: see `main`
            from mlpipeline_operator.reconcile import handlers
    except ImportError as error:
        print(f"mlpipeline operator: error: {missing_extra('operator', error)}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    return handlers.run(config)


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: only `run` needs the local runner.
    with long_lived():  # imports: see `main`
        from mlpipeline_operator.local.command import run_command

    return run_command(args)


def cmd_promote(args: argparse.Namespace) -> int:
    from mlpipeline_operator.promotion.request import from_namespace
    from mlpipeline_operator.promotion.retry import retry_from_namespace

    request = from_namespace(args)
    try:
        # Imported here: only `promote` needs the MLflow client.
        with long_lived():  # imports: see `main`
            from mlpipeline_operator.promotion.promote import promote
    except ImportError as error:
        # Exit 7 and a Failed decision, as for a tracking URI this installation cannot use.
        from mlpipeline_operator.promotion.errors import ExitCode, PromotionFailure
        from mlpipeline_operator.promotion.outputs import record_failure

        failure = PromotionFailure(ExitCode.MLFLOW_ERROR, missing_extra("promote", error))
        return record_failure(
            request, failure, lambda line: print(f"mlpipeline promote: {line}", file=sys.stderr)
        )
    return promote(request, retry_from_namespace(args))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. Given the arguments, it holds the flags of the command they
    name only: those of `operator`, `run` and `promote` import modules the others do not use."""
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None

    def wanted(command: str) -> bool:
        return chosen is None or chosen == command

    parser = ArgumentParser(
        prog="mlpipeline",
        description="Validate and render MLPipeline resources; run the operator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="check MLPipeline files; print FILE: FIELD.PATH: message per problem"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help='YAML file ("-": stdin)')
    validate.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    validate.add_argument(
        "--policy",
        metavar="POLICY",
        help="also check the pipelines against this TenancyPolicy file (docs/tenancy.md)",
    )
    validate.add_argument(
        "--namespace",
        help="namespace whose policy applies (default: each pipeline's metadata.namespace)",
    )
    validate.set_defaults(func=cmd_validate)

    render = commands.add_parser("render", help="print the Argo objects the operator would create")
    render.add_argument("file", metavar="FILE", help='YAML file ("-": stdin)')
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    render.add_argument("--promotion-image", help="image of the promotion step")
    render.add_argument("--namespace", help="namespace to render for (default: the file's)")
    render.add_argument(
        "--generation", type=positive_int, help="generation to render (default: the file's, else 1)"
    )
    render.set_defaults(func=cmd_render)

    crd = commands.add_parser("crd", help="print the MLPipeline CustomResourceDefinition")
    crd.add_argument(
        "--peering",
        action="store_true",
        help="print kopf's peering CRDs instead (leader election of replicas)",
    )
    crd.set_defaults(func=cmd_crd)

    # Imported only for the command chosen (in `main`'s `long_lived` block).
    operator = commands.add_parser(
        "operator", help="run the operator (flags default from MLPIPELINE_* variables)"
    )
    if wanted("operator"):
        from mlpipeline_operator.reconcile.config import add_arguments as operator_arguments

        operator_arguments(operator)
    operator.set_defaults(func=cmd_operator)

    run = commands.add_parser("run", help="run a pipeline on this machine, as local processes")
    if wanted("run"):
        from mlpipeline_operator.local.arguments import add_arguments as add_run_arguments

        add_run_arguments(run)
    run.set_defaults(func=cmd_run)

    promote = commands.add_parser(
        "promote", help="register a run's model in MLflow; move an alias if the gates pass"
    )
    if wanted("promote"):
        from mlpipeline_operator.promotion.request import add_arguments as add_promote_arguments

        add_promote_arguments(promote)
    promote.set_defaults(func=cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Starting a command is mostly importing (pydantic; then the compiler, MLflow or kopf), which
    # is done in `long_lived` blocks (here and in each command): see `perf.long_lived`.
    argv = sys.argv[1:] if argv is None else list(argv)
    with long_lived():
        args = build_parser(argv).parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
