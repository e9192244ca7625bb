"""The Argo CD AppProject example of a team (manifests/argocd/team-project.yaml): it lets a
team's Applications create MLPipelines only, in the team's namespace only."""

from __future__ import annotations

from typing import Any

import yaml

from hack.golden import REPO
from mlpipeline_operator.api.constants import GROUP, KIND

PROJECT = REPO / "manifests" / "argocd" / "team-project.yaml"


def load() -> dict[str, Any]:
    (doc,) = list(yaml.safe_load_all(PROJECT.read_text()))
    project: dict[str, Any] = doc
    return project


def test_the_project_allows_mlpipelines_in_the_team_namespace_only() -> None:
    project = load()
    assert (project["apiVersion"], project["kind"]) == ("argoproj.io/v1alpha1", "AppProject")
    spec = project["spec"]
    assert spec["namespaceResourceWhitelist"] == [{"group": GROUP, "kind": KIND}]
    assert spec["clusterResourceWhitelist"] == []
    assert spec["destinations"] == [
        {"server": "https://kubernetes.default.svc", "namespace": project["metadata"]["name"]}
    ]
    assert "*" not in spec["sourceRepos"]
    assert not {"namespaceResourceBlacklist", "clusterResourceBlacklist"} & set(spec)
