"""Files kept in step with their sources: the chart's CRDs, the values tables, the argocd-cm
snippet, the operator's settings in the docs and the chart. No cluster, no helm."""

from __future__ import annotations

import argparse
import re

import yaml

from hack.delivery_files import (
    ARGOCD_CM,
    CHART_DIR,
    CONFIGURATION_DOC,
    HEALTH_KEY,
    HEALTH_LUA,
    VALUES_FILE,
    documented_values,
    expected_files,
)
from mlpipeline_operator import __version__
from mlpipeline_operator.api.constants import DEFAULT_PROMOTION_IMAGE
from mlpipeline_operator.reconcile import config
from tests.paths import REPO

CRDS = REPO / "crds"


def test_chart_crds_are_the_generated_ones() -> None:
    """`make crd` copies crds/ into the chart: the peering CRDs to crds/ (Helm installs them
    first), the MLPipeline CRD to files/crds/ (templated, behind crds.install and crds.keep)."""
    copies = {
        CRDS / "peerings.kopf.dev.yaml": CHART_DIR / "crds" / "peerings.kopf.dev.yaml",
        CRDS / "mlops.gitops.dev_mlpipelines.yaml": CHART_DIR
        / "files"
        / "crds"
        / "mlops.gitops.dev_mlpipelines.yaml",
    }
    for source, copy in copies.items():
        assert copy.read_text() == source.read_text(), f"{copy} is stale: run `make crd`"
    assert sorted(p.name for p in (CHART_DIR / "crds").iterdir()) == ["peerings.kopf.dev.yaml"]
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(c.name for c in copies.values())


def test_generated_docs_and_argocd_snippet_are_current() -> None:
    for path, content in expected_files().items():
        assert path.read_text() == content, f"{path} is stale: run `make chart-docs`"


def test_argocd_cm_snippet_carries_the_health_check_verbatim() -> None:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["data"][HEALTH_KEY] == HEALTH_LUA.read_text()


def test_every_chart_value_is_documented_and_in_the_schema() -> None:
    import json

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = documented_values(VALUES_FILE.read_text())  # raises on an undocumented value
    for value in values:
        node = schema
        for part in value.path.split("."):
            assert part in node.get("properties", {}), f"{value.path} is not in values.schema.json"
            node = node["properties"][part]
        assert node.get("description"), f"{value.path} has no description in the schema"


def _operator_flags() -> set[str]:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, env={})
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def _operator_env_vars() -> set[str]:
    source = (REPO / "operator" / "mlpipeline_operator" / "reconcile" / "config.py").read_text()
    return set(re.findall(r"MLPIPELINE_[A-Z_]+", source))


def test_every_operator_setting_is_documented_and_set_by_the_chart() -> None:
    doc = CONFIGURATION_DOC.read_text()
    deployment = (CHART_DIR / "templates" / "deployment.yaml").read_text()
    flags, env_vars = _operator_flags(), _operator_env_vars()
    assert {"--namespace", "--peering", "--liveness"} <= flags
    assert {"MLPIPELINE_NAMESPACES", "MLPIPELINE_PEERING"} <= env_vars
    for flag in flags:
        assert f"`{flag}" in doc or f", `{flag}" in doc, f"{flag} missing from {CONFIGURATION_DOC}"
    for var in env_vars:
        assert f"`{var}" in doc, f"{var} missing from {CONFIGURATION_DOC}"
        assert f"name: {var}" in deployment, f"the chart's Deployment does not set {var}"


def test_chart_version_and_default_images_follow_the_package() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load(VALUES_FILE.read_text())
    assert chart["appVersion"] == __version__
    # The image the chart deploys by default is the one the compiler names for promotion.
    assert f"{values['image']['repository']}:{chart['appVersion']}" == DEFAULT_PROMOTION_IMAGE
