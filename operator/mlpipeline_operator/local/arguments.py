"""The flags of `mlpipeline run` (kept apart so that building the CLI's parser stays cheap)."""

from __future__ import annotations

import argparse

from mlpipeline_operator.cli_types import non_negative_number, positive_int


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f'bad parameter "{text}": write NAME=VALUE')
    return name, value


def rfc3339_time(text: str) -> str:
    """An RFC 3339 time, kept as written."""
    from mlpipeline_operator.core import rfc3339_error  # the models: only when the flag is given

    error = rfc3339_error(text)
    if error is not None:
        raise argparse.ArgumentTypeError(error)
    return text


def _volume(text: str) -> tuple[str, str]:
    name, sep, directory = text.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(f'bad volume "{text}": write NAME=DIR')
    return name, directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `mlpipeline run`; see docs/local.md."""
    parser.add_argument("file", metavar="FILE", help="YAML file with one MLPipeline")
    parser.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="override a pipeline parameter (repeatable)",
    )
    parser.add_argument(
        "--scheduled-time",
        type=rfc3339_time,
        metavar="TIME",
        help="the run's {{pipeline.scheduledTime}}, an RFC 3339 time such as "
        "2026-01-31T00:00:00Z (default: the time the run starts)",
    )
    parser.add_argument(
        "--volume",
        dest="volumes",
        action="append",
        type=_volume,
        default=[],
        metavar="NAME=DIR",
        help="use the directory DIR as the volume NAME (repeatable; required for configMap "
        "and secret volumes)",
    )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        help="where the run's files go (default: ./.mlpipeline/runs/PIPELINE-TIMESTAMP); "
        "must be new or empty",
    )
    parser.add_argument(
        "--parallel",
        type=positive_int,
        metavar="N",
        help="run at most N steps at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--backoff-scale",
        type=non_negative_number,
        default=1.0,
        metavar="F",
        help="multiply every retry backoff wait by F, e.g. 0.01 (default 1)",
    )
    parser.add_argument(
        "--mlflow-uri",
        metavar="URI",
        help="MLflow store shared between runs, e.g. sqlite:///mlflow.db "
        "(default: RUN_DIR/mlflow.db, new for each run)",
    )
    parser.add_argument(
        "--ignore-suspend",
        action="store_true",
        help="run a pipeline whose spec.suspend is true (refused otherwise)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where cached steps keep their results (default: ./.mlpipeline/cache/PIPELINE)",
    )
    parser.add_argument(
        "--source-dir",
        metavar="DIR",
        help="where input artifacts from outside the pipeline are: S3 key KEY is DIR/s3/KEY, "
        "git repository https://HOST/PATH is a clone in DIR/git/HOST/PATH",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, cached or not, and keep no result",
    )
    parser.add_argument(
        "--skip-promotion",
        action="store_true",
        help="run the steps only, not the promotion step",
    )
