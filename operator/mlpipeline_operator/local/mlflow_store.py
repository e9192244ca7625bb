"""The MLflow store of a local run: a SQLite file the steps and the promotion step share.

By default each run has its own store, `RUN/mlflow.db`, with artifacts in `RUN/mlartifacts/`.
`--mlflow-uri` shares one between runs (so a later run meets the champion of an earlier one): a
`sqlite:///PATH` keeps its artifacts beside the file, in `mlartifacts/`; any other URI (an
`http://` tracking server) keeps them where that server says.

mlflow is imported only here and only when a run needs a store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline_operator.local.plan import file_name

SQLITE_PREFIX = "sqlite:///"


class StoreError(RuntimeError):
    """The store cannot be used (mlflow missing, or the store refused to open)."""


@dataclass(frozen=True)
class Store:
    """A tracking URI, and where a SQLite store keeps its artifacts (None: the server decides)."""

    uri: str
    artifacts: Path | None


def local_store(run_dir: Path, uri: str | None) -> Store:
    """The store of a run: its own SQLite file, or the one given (relative paths made absolute)."""
    if uri is None:
        db = run_dir.resolve() / "mlflow.db"
    elif uri.startswith(SQLITE_PREFIX):
        db = Path(uri[len(SQLITE_PREFIX) :]).resolve()
    else:
        return Store(uri, None)
    return Store(f"{SQLITE_PREFIX}{db}", db.parent / "mlartifacts")


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise StoreError(
            "this pipeline uses MLflow: install mlflow in this environment "
            "(pip install 'mlflow>=3.17,<3.18')"
        ) from None
    return mlflow


def prepare(store: Store, experiment: str) -> None:
    """Create the store's tables and the run's experiment, with artifacts where they belong.

    Steps run in their own directories; left to itself MLflow would put each experiment's
    artifacts under `./mlruns` of whichever process created it first.
    """
    mlflow = _mlflow()
    # MLflow narrates the creation of its tables at INFO: not what the run's terminal is for.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if store.artifacts is not None:
            from mlflow.store.tracking import sqlalchemy_store

            try:
                store.artifacts.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"MLflow store {store.uri}: cannot make {store.artifacts}: "
                    f"{error.strerror or error}"
                ) from None
            store_class: Any = sqlalchemy_store.SqlAlchemyStore
            tracking = store_class(store.uri, store.artifacts.as_uri())
            if tracking.get_experiment_by_name(experiment) is None:
                # The experiment's name is the pipeline's: made a file name, never a path.
                location = (store.artifacts / file_name(experiment)).as_uri()
                tracking.create_experiment(experiment, artifact_location=location)
            tracking.engine.dispose()
        else:
            client = mlflow.MlflowClient(tracking_uri=store.uri)
            if client.get_experiment_by_name(experiment) is None:
                client.create_experiment(experiment)
    except mlflow.exceptions.MlflowException as error:
        raise StoreError(f"MLflow store {store.uri}: {error.message}") from None


def alias_version(store: Store, model: str, alias: str) -> str | None:
    """The version of `model` that holds `alias`, or None when no version holds it."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    try:
        version: str = client.get_model_version_by_alias(model, alias).version
    except mlflow.exceptions.MlflowException:
        return None
    return str(version)
