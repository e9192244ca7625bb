"""Credentials against a real `mlflow server --app-name basic-auth` (needs Flask-WTF, from the
`mlflow[auth]` extra): accepted, missing, wrong, and without the permission (401 and 403)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlpipeline_operator.promotion.errors import ExitCode
from mlpipeline_operator.promotion.outputs import read_outputs
from tests.mlflow.helpers import log_run_to, make_request, run_promote
from tests.mlflow.server import MlflowServer, start_server
from tests.paths import REPO

pytestmark = pytest.mark.mlflow

ADMIN = ("admin", "admin-Passw0rd-for-tests")
READER = ("reader", "reader-Passw0rd-for-tests")
WRONG_PASSWORD = "not-the-Passw0rd-42"
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@dataclass
class AuthServer:
    server: MlflowServer
    model: str  # a registered model the admin owns, with version 1 promoted
    run_id: str  # a run that passes any gate the tests set


def _basic(user: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()


def _create_user(url: str, user: tuple[str, str]) -> None:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": user[0], "password": user[1]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": _basic(ADMIN)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _as(patch: pytest.MonkeyPatch, user: tuple[str, str] | None) -> None:
    for name in CREDENTIALS:
        patch.delenv(name, raising=False)
    if user is not None:
        patch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory, quiet_env: None, model: Any
) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = start_server(
        root,
        app_name="basic-auth",
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "mlpipeline-tests",
        },
    )
    try:
        _create_user(server.url, READER)
        with pytest.MonkeyPatch.context() as patch:
            _as(patch, ADMIN)
            run_id = log_run_to(server.url, model, {"auc": 0.97})
            request = make_request(server.url, "auth-fraud", run_id, root / "setup")
            assert run_promote(request).code == ExitCode.DECIDED
        yield AuthServer(server, "auth-fraud", run_id)
    finally:
        server.stop()


def test_accepted_credentials_promote(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as(monkeypatch, ADMIN)
    request = make_request(auth_server.server.url, "auth-other", auth_server.run_id, tmp_path)
    outcome = run_promote(request)
    assert outcome.code == ExitCode.DECIDED, outcome.stderr
    assert outcome.outputs["decision"] == "Promoted"


def test_missing_credentials_say_which_variables(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as(monkeypatch, None)
    url = auth_server.server.url
    outcome = run_promote(make_request(url, auth_server.model, auth_server.run_id, tmp_path))
    assert outcome.code == ExitCode.UNAUTHORIZED
    assert f"MLflow at {url} refused to read run {auth_server.run_id}: " in outcome.stderr
    assert "not authenticated (HTTP 401); no credentials in the environment: set " in (
        outcome.stderr
    )
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN" in (
        outcome.stderr
    )
    assert outcome.outputs["decision"] == "Failed"


def test_wrong_password_is_refused_and_never_printed(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    """The real command, with the credentials in its environment as `envFrom` puts them."""
    request = make_request(auth_server.server.url, auth_server.model, auth_server.run_id, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    env |= {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": WRONG_PASSWORD}
    result = subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator", "promote", *request.to_args()],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == ExitCode.UNAUTHORIZED, result.stderr
    assert "not authenticated (HTTP 401); the credentials in MLFLOW_TRACKING_USERNAME, " in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    outputs = read_outputs(tmp_path)
    everything = result.stdout + result.stderr + "".join(outputs.values())
    assert WRONG_PASSWORD not in everything
    assert WRONG_PASSWORD not in " ".join(request.to_args())


def test_token_refused_by_basic_auth(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as(monkeypatch, None)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "a-token-the-server-does-not-know")
    request = make_request(auth_server.server.url, auth_server.model, auth_server.run_id, tmp_path)
    outcome = run_promote(request)
    assert outcome.code == ExitCode.UNAUTHORIZED
    assert "the credentials in MLFLOW_TRACKING_TOKEN were not accepted" in outcome.stderr
    assert "a-token-the-server-does-not-know" not in outcome.stderr


def test_missing_permission_is_a_403(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reader may read the admin's model and run, not change the model's versions: here,
    the lineage tag of the version from this run (the admin's version 1)."""
    _as(monkeypatch, READER)
    request = make_request(auth_server.server.url, auth_server.model, auth_server.run_id, tmp_path)
    request = dataclasses.replace(request, lineage={"pipeline": "another-pipeline"})
    outcome = run_promote(request)
    assert outcome.code == ExitCode.UNAUTHORIZED, outcome.stdout + outcome.stderr
    assert (
        f"refused to tag {auth_server.model} version 1 with mlpipeline.pipeline: "
        "permission denied (HTTP 403)"
    ) in outcome.stderr
    assert outcome.outputs["decision"] == "Failed"
    assert outcome.outputs["version"] == "1"
