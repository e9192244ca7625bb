"""The Argo CD health check of MLPipeline (health.lua) under a real Lua 5.1 interpreter (Argo CD
runs gopher-lua, a Lua 5.1), against the cases of its health_test.yaml and testdata/, the layout
of Argo CD's resource_customizations so that the same files can be offered upstream."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.delivery_files import HEALTH_DIR
from mlpipeline_operator.api.status import Phase
from tests.chart.health_lua import health

CASES = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())["tests"]


def test_every_testdata_file_has_a_case() -> None:
    used = {Path(case["inputPath"]).name for case in CASES}
    assert used == {p.name for p in (HEALTH_DIR / "testdata").glob("*.yaml")}
    expected = {"Progressing", "Healthy", "Degraded", "Suspended"}
    assert {case["healthStatus"]["status"] for case in CASES} == expected


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_check_case(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HEALTH_DIR / case["inputPath"]).read_text())
    assert obj["apiVersion"] == "mlops.gitops.dev/v1alpha1" and obj["kind"] == "MLPipeline"
    assert health(obj) == case["healthStatus"]


@pytest.mark.parametrize("phase", typing.get_args(Phase))
def test_every_phase_of_the_api_has_a_health(phase: str) -> None:
    """A phase the operator may write never yields Unknown."""
    obj = yaml.safe_load((HEALTH_DIR / "testdata" / "running.yaml").read_text())
    obj["status"] = {"observedGeneration": 1, "phase": phase, "message": "m"}
    assert health(obj)["status"] in {"Progressing", "Healthy", "Degraded"}


def test_suspension_does_not_hide_an_invalid_spec_or_a_stale_status() -> None:
    suspended = yaml.safe_load((HEALTH_DIR / "testdata" / "suspended.yaml").read_text())
    assert health(suspended)["status"] == "Suspended"
    stale = copy.deepcopy(suspended)
    stale["metadata"]["generation"] += 1
    assert health(stale)["status"] == "Progressing"
    invalid = yaml.safe_load((HEALTH_DIR / "testdata" / "invalid.yaml").read_text())
    invalid["spec"]["schedule"] = {"cron": "0 2 * * *", "suspend": True}
    assert health(invalid)["status"] == "Degraded"


def test_an_old_failed_promotion_does_not_degrade_a_later_run() -> None:
    obj = yaml.safe_load((HEALTH_DIR / "testdata" / "promotion-failed.yaml").read_text())
    assert health(obj)["status"] == "Degraded"
    obj["status"]["lastRun"]["name"] = "fraud-detection-g3-aaaaaa"  # a newer run, no promotion yet
    assert health(obj) == {
        "status": "Healthy",
        "message": "run fraud-detection-g2-6edc4a succeeded",
    }
