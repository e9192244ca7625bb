"""The chart's RBAC, proven rather than assumed.

The operator (`mlpipeline operator`, a real process, peering on) runs as the chart's
ServiceAccount, with a token from the TokenRequest API, through the integration scenario:
a run with its owner reference followed to success, the history limit, a schedule created,
updated and removed, an invalid spec. Then the API server's audit log must show

- no request of that identity refused, and
- every verb the chart grants used (a verb never used would be a right too many),

and SubjectAccessReviews show what stays denied. mlpipelines/finalizers is not a request of its
own: the OwnerReferencesPermissionEnforcement admission plugin checks it when a run with
`blockOwnerDeletion` is created; a role without it is refused that create.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.delivery_files import CHART_DIR
from mlpipeline_operator.caching import cache_config_map_name, memoize_keys
from mlpipeline_operator.core import run_name
from tests.chart.conftest import ChartPlane, ensure_namespace
from tests.chart.helm import NAMESPACE, find, of_kind, render
from tests.controlplane.harness import ApiException, ControlPlane, Kube, free_port
from tests.integration.operator_process import (
    ARGO_API,
    PIPELINE_API,
    OperatorProcess,
    get_or_none,
    make_pipeline,
    runs,
    wait,
    wait_status,
)
from tests.unit.argo_runs import StepRun, workflow_status

pytestmark = pytest.mark.integration

SERVICE_ACCOUNT = "mlpipeline-operator"
WEBHOOK = "mlpipeline-operator-webhook"
USERNAME = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
TIMEOUT = 40
Grant = tuple[str, str, str]  # (API group, resource[/subresource], verb)


# --------------------------------------------------------------------------- identity


def service_account_kubeconfig(plane: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig with a bearer token of the ServiceAccount (TokenRequest API)."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    response = plane.kube.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body=request
    )
    assert plane.pki is not None
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "chart",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority": str(plane.pki.ca_cert),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": response["status"]["token"]}}],
        "contexts": [{"name": "chart", "context": {"cluster": "chart", "user": name}}],
        "current-context": "chart",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def granted(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def used(events: Iterable[dict[str, Any]]) -> set[Grant]:
    result = set()
    for event in events:
        ref = event.get("objectRef")
        if not ref:
            continue  # discovery (/api, /apis): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        result.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return result


def access(
    kube: Kube, verb: str, group: str, resource: str, namespace: str | None = None, **extra: str
) -> bool:
    """SubjectAccessReview (as the admin) for the operator's ServiceAccount."""
    attributes: dict[str, str] = {"verb": verb, "group": group, "resource": resource, **extra}
    if namespace:
        attributes["namespace"] = namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": USERNAME,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    answer = kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review)
    return bool(answer["status"].get("allowed"))


# --------------------------------------------------------------------------- the scenario


def run_to_success(kube: Kube, namespace: str, op: OperatorProcess) -> None:
    """A run with an owner reference, followed to Succeeded; a new generation then prunes it."""
    created = kube.create(make_pipeline(namespace, "demo", history={"succeeded": 0, "failed": 0}))
    first = run_name(namespace, "demo", 1)
    wf = wait(lambda: get_or_none(kube, "Workflow", namespace, first), TIMEOUT, "run", op)
    (owner,) = wf["metadata"]["ownerReferences"]
    assert (owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (
        created["metadata"]["uid"],
        True,
        True,
    )
    steps = {"extract": StepRun("Succeeded"), "train": StepRun("Running")}
    kube.patch(
        ARGO_API, "Workflow", first, {"status": workflow_status(first, "Running", steps)}, namespace
    )
    wait_status(kube, namespace, "demo", op, TIMEOUT, phase="Running")
    done = workflow_status(first, "Succeeded", {}, finished="2026-01-01T01:00:00Z")
    kube.patch(ARGO_API, "Workflow", first, {"status": done}, namespace)
    wait_status(kube, namespace, "demo", op, TIMEOUT, phase="Succeeded", observedGeneration=1)
    # Generation 2: a new run; history 0 deletes the finished first one.
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"spec": {"parameters": [{"name": "lr", "value": "0.2"}]}},
        namespace,
    )
    second = run_name(namespace, "demo", 2)
    wait(
        lambda: {w["metadata"]["name"] for w in runs(kube, namespace, "demo")} == {second},
        TIMEOUT,
        "the second run, the first pruned",
        op,
    )


def stop_a_run(kube: Kube, namespace: str, op: OperatorProcess) -> None:
    """A running run stopped by the mlops.gitops.dev/stop annotation (get, then patch)."""
    kube.create(make_pipeline(namespace, "stoppable"))
    run = run_name(namespace, "stoppable", 1)
    wait(lambda: get_or_none(kube, "Workflow", namespace, run), TIMEOUT, "run", op)
    running = workflow_status(run, "Running", {"extract": StepRun("Running")})
    kube.patch(ARGO_API, "Workflow", run, {"status": running}, namespace)
    annotation = {"metadata": {"annotations": {"mlops.gitops.dev/stop": "current"}}}
    kube.patch(PIPELINE_API, "MLPipeline", "stoppable", annotation, namespace)
    wait(
        lambda: (
            (get_or_none(kube, "Workflow", namespace, run) or {}).get("spec", {}).get("shutdown")
            == "Stop"
        ),
        TIMEOUT,
        "the run stopped",
        op,
    )


def schedule_lifecycle(kube: Kube, namespace: str, op: OperatorProcess) -> None:
    """A CronWorkflow created, updated in place, deleted when the schedule goes."""
    kube.create(make_pipeline(namespace, "nightly", schedule={"cron": "0 2 * * *"}))
    cron = wait(
        lambda: get_or_none(kube, "CronWorkflow", namespace, "nightly"), TIMEOUT, "cron", op
    )
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "nightly",
        {"spec": {"schedule": {"cron": "30 4 * * *"}}},
        namespace,
    )

    def updated() -> bool:
        obj = get_or_none(kube, "CronWorkflow", namespace, "nightly")
        return bool(obj and obj["spec"]["schedules"] == ["30 4 * * *"])

    wait(updated, TIMEOUT, "the cron updated in place", op)
    live = get_or_none(kube, "CronWorkflow", namespace, "nightly")
    assert live is not None and live["metadata"]["uid"] == cron["metadata"]["uid"]
    kube.patch(PIPELINE_API, "MLPipeline", "nightly", {"spec": {"schedule": None}}, namespace)
    wait(
        lambda: get_or_none(kube, "CronWorkflow", namespace, "nightly") is None,
        TIMEOUT,
        "the cron deleted",
        op,
    )
    wait(lambda: runs(kube, namespace, "nightly"), TIMEOUT, "a run instead", op)


def cache_lifecycle(kube: Kube, namespace: str, op: OperatorProcess) -> None:
    """A caching pipeline's cache ConfigMap, created in Argo's namespace before its run, read
    before a rerun and its stale entries removed (get, patch), deleted with the pipeline."""
    kube.create(make_pipeline(namespace, "cached", defaults={"cache": {"maxAge": "1h"}}))
    name = cache_config_map_name(namespace, "cached")
    wait(lambda: get_or_none(kube, "ConfigMap", "argo", name, "v1"), TIMEOUT, "the cache", op)
    (first,) = wait(lambda: runs(kube, namespace, "cached"), TIMEOUT, "its run", op)
    current = {key: "{}" for key in memoize_keys(first)}
    stale = {f"train-{i:032x}": "s" * 200_000 for i in range(3)}  # above half of 1 MiB
    kube.patch("v1", "ConfigMap", name, {"data": {**current, **stale}}, "argo")
    rerun = {"metadata": {"annotations": {"mlops.gitops.dev/rerun": "1"}}}
    kube.patch(PIPELINE_API, "MLPipeline", "cached", rerun, namespace)
    wait(lambda: len(runs(kube, namespace, "cached")) == 2, TIMEOUT, "the rerun", op)
    trimmed = kube.get("v1", "ConfigMap", name, "argo")
    assert trimmed["data"] == current
    kube.delete(PIPELINE_API, "MLPipeline", "cached", namespace)
    wait(
        lambda: get_or_none(kube, "ConfigMap", "argo", name, "v1") is None,
        TIMEOUT,
        "the cache deleted with its pipeline",
        op,
    )


def invalid_spec(kube: Kube, namespace: str, op: OperatorProcess) -> None:
    doc = make_pipeline(namespace, "broken")
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    kube.create(doc)
    wait_status(kube, namespace, "broken", op, TIMEOUT, phase="Invalid")

    def event() -> bool:
        events = kube.list_objects("v1", "Event", namespace)
        return any(
            e["reason"] == "Invalid" and e["involvedObject"]["name"] == "broken" for e in events
        )

    wait(event, TIMEOUT, "the Invalid event", op)


def peering_record(kube: Kube, kind: str, namespace: str | None) -> dict[str, Any]:
    """The records in the peering object; none while the operator has not created it yet."""
    try:
        obj = kube.get("kopf.dev/v1", kind, "mlpipeline-operator", namespace)
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    status: dict[str, Any] = obj.get("status") or {}
    return status


def ca_bundle(kube: Kube, name: str = WEBHOOK) -> str | None:
    """The caBundle of the chart's webhook, set by the operator from the chart's Secret."""
    configuration = kube.get(
        "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", name
    )
    bundle: str | None = configuration["webhooks"][0]["clientConfig"].get("caBundle")
    return bundle


def namespaced_release(kube: Kube, name: str) -> tuple[str, str, list[dict[str, Any]]]:
    """The namespaced chart rendered as release `name` watching a namespace of its own: the
    release's namespace, the watched one (both created) and the chart's objects."""
    release_namespace = f"{name}-op-{uuid.uuid4().hex[:6]}"
    watched = f"{name}-ml-{uuid.uuid4().hex[:6]}"
    for namespace in (release_namespace, watched):
        ensure_namespace(kube, namespace)
    objects = render(
        [CHART_DIR / "ci" / "namespaced-values.yaml"],
        [
            f"operator.watchNamespaces={{{watched}}}",
            f"fullnameOverride={name}-operator",
            "crds.install=false",
        ],
        namespace=release_namespace,
        include_crds=False,
    )
    return release_namespace, watched, objects


# --------------------------------------------------------------------------- tests


def test_cluster_wide_operator_needs_every_granted_verb_and_nothing_more(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]], tmp_path: Path
) -> None:
    kube = chart_plane.kube
    role = find(installed_chart, "ClusterRole", "mlpipeline-operator")
    kubeconfig = service_account_kubeconfig(
        chart_plane.plane, NAMESPACE, SERVICE_ACCOUNT, tmp_path / "kubeconfig"
    )
    namespace = f"rbac-{uuid.uuid4().hex[:6]}"
    ensure_namespace(kube, namespace)
    # No --standalone: peering through the chart's ClusterKopfPeering, as the Deployment runs;
    # the webhook's settings as the chart sets them, on loopback.
    webhook = [
        f"--webhook=https://127.0.0.1:{free_port()}/validate",
        f"--webhook-namespace={NAMESPACE}",
        *(f"--webhook-{flag}={WEBHOOK}" for flag in ("secret", "service", "configuration")),
    ]
    op = OperatorProcess(chart_plane.plane, tmp_path, webhook, kubeconfig=kubeconfig)
    op.start()
    try:
        wait(
            lambda: peering_record(kube, "ClusterKopfPeering", None),
            TIMEOUT,
            "the operator's record in the ClusterKopfPeering",
            op,
        )
        wait(lambda: ca_bundle(kube), TIMEOUT, "the operator's CA in the webhook", op)
        run_to_success(kube, namespace, op)
        stop_a_run(kube, namespace, op)
        schedule_lifecycle(kube, namespace, op)
        cache_lifecycle(kube, namespace, op)
        invalid_spec(kube, namespace, op)
    finally:
        op.stop()
    assert "Forbidden" not in op.log(), op.log()[-4000:]
    caches = find(installed_chart, "Role", "mlpipeline-operator-caches")
    webhook_rules = [
        *find(installed_chart, "Role", WEBHOOK)["rules"],
        *find(installed_chart, "ClusterRole", WEBHOOK)["rules"],
    ]
    rules = [*role["rules"], *caches["rules"], *webhook_rules]

    events = chart_plane.audit_events(USERNAME)
    refused = [e for e in events if e.get("responseStatus", {}).get("code") == 403]
    assert not refused, [(e["verb"], e.get("objectRef")) for e in refused]
    peering_patches = {
        e["objectRef"].get("name")
        for e in events
        if e["verb"] == "patch" and e.get("objectRef", {}).get("resource") == "clusterkopfpeerings"
    }
    assert peering_patches == {"mlpipeline-operator"}  # the resourceNames of the patch rule
    webhook_objects = {
        (e["objectRef"]["resource"], e["objectRef"].get("namespace"), e["objectRef"].get("name"))
        for e in events
        if e.get("objectRef", {}).get("resource") in ("secrets", "validatingwebhookconfigurations")
    }
    assert webhook_objects == {
        ("secrets", NAMESPACE, WEBHOOK),
        ("validatingwebhookconfigurations", None, WEBHOOK),
    }
    # Every verb granted was used, but mlpipelines/finalizers, which admission checks (below).
    finalizers = ("mlops.gitops.dev", "mlpipelines/finalizers", "update")
    assert used(events) == granted(rules) - {finalizers}, (
        f"used but not granted: {used(events) - granted(rules)}; "
        f"granted but unused: {granted(rules) - used(events) - {finalizers}}"
    )
    configmaps = {
        e["objectRef"].get("namespace")
        for e in events
        if e.get("objectRef", {}).get("resource") == "configmaps"
    }
    assert configmaps == {"argo"}


def test_the_tenancy_policy_is_read_through_its_one_config_map(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]], tmp_path: Path
) -> None:
    """With `policy.enabled`, the operator reads the policy's ConfigMap (get, by name, in the
    release namespace) through the chart's Role, and nothing else of the release namespace;
    a forbidden pipeline is Invalid, then runs once the policy allows it."""
    kube = chart_plane.kube
    objects = render(
        sets=[
            "policy.enabled=true",
            "policy.interval=1",
            "policy.defaults.secrets={mlflow}",
            "policy.defaults.trackingUris={http://mlflow:5000}",
            "policy.defaults.models={demo}",
        ],
        include_crds=False,
    )
    name = "mlpipeline-operator-tenancy"
    config_map = find(objects, "ConfigMap", name)
    role = find(objects, "Role", name)
    for obj in (config_map, role, find(objects, "RoleBinding", name)):
        kube.apply(obj)
    env = {
        e["name"]: e["value"]
        for e in find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith("MLPIPELINE_POLICY")
    }
    kubeconfig = service_account_kubeconfig(
        chart_plane.plane, NAMESPACE, SERVICE_ACCOUNT, tmp_path / "kubeconfig"
    )
    namespace = f"tenancy-{uuid.uuid4().hex[:6]}"
    ensure_namespace(kube, namespace)
    # This operator's requests only (the webhook's, of an earlier test, are checked there).
    mark = chart_plane.audit_mark()
    op = OperatorProcess(
        chart_plane.plane, tmp_path, ["--standalone"], kubeconfig=kubeconfig, env=env
    )
    op.start()
    try:
        kube.create(make_pipeline(namespace, "allowed"))
        doc = make_pipeline(namespace, "forbidden")
        doc["spec"]["promotion"]["model"] = "fraud"
        kube.create(doc)
        status = wait_status(kube, namespace, "forbidden", op, TIMEOUT, phase="Invalid")
        assert status["message"] == (
            f'spec.promotion.model: "fraud" is not allowed in namespace {namespace}; allowed: demo'
        )
        wait(
            lambda: get_or_none(kube, "Workflow", namespace, run_name(namespace, "allowed", 1)),
            TIMEOUT,
            "the allowed run",
            op,
        )
        policy = yaml.safe_load(config_map["data"]["policy.yaml"])
        policy["defaults"]["models"] = ["demo", "fraud"]
        config_map["data"]["policy.yaml"] = yaml.safe_dump(policy)
        kube.apply(config_map)
        wait(
            lambda: get_or_none(kube, "Workflow", namespace, run_name(namespace, "forbidden", 1)),
            TIMEOUT,
            "the run allowed by the new policy",
            op,
        )
    finally:
        op.stop()
    events = chart_plane.audit_events(USERNAME, since=mark)
    refused = [e for e in events if e.get("responseStatus", {}).get("code") == 403]
    assert not refused, [(e["verb"], e.get("objectRef")) for e in refused]
    in_release = {
        (e["objectRef"].get("resource"), e["objectRef"].get("name"), e["verb"])
        for e in events
        if e.get("objectRef", {}).get("namespace") == NAMESPACE
    }
    assert in_release == {("configmaps", name, "get")}
    assert granted(role["rules"]) == {("", "configmaps", "get")}
    assert access(kube, "get", "", "configmaps", NAMESPACE, name=name)
    assert not access(kube, "get", "", "configmaps", NAMESPACE, name="another")
    assert not access(kube, "list", "", "configmaps", NAMESPACE)
    assert not access(kube, "watch", "", "configmaps", NAMESPACE, name=name)


def test_block_owner_deletion_needs_the_finalizers_rule(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]]
) -> None:
    """A run owned with blockOwnerDeletion: created (dry-run) as the operator; refused to an
    identity with the same rules but mlpipelines/finalizers."""
    kube = chart_plane.kube
    namespace = f"owner-{uuid.uuid4().hex[:6]}"
    ensure_namespace(kube, namespace)
    owner = kube.create(make_pipeline(namespace, "owner"))
    workflow = {
        "apiVersion": ARGO_API,
        "kind": "Workflow",
        "metadata": {
            "name": "owner-run",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": PIPELINE_API,
                    "kind": "MLPipeline",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "x"}}],
        },
    }
    kube.create(workflow, dry_run=True, as_user=USERNAME)

    role = copy.deepcopy(find(installed_chart, "ClusterRole", "mlpipeline-operator"))
    role["metadata"] = {"name": "rbac-probe-no-finalizers"}
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["mlpipelines/finalizers"]]
    assert (
        len(role["rules"])
        == len(find(installed_chart, "ClusterRole", SERVICE_ACCOUNT)["rules"]) - 1
    )
    kube.apply(role)
    probe = "rbac-probe"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": probe, "namespace": namespace},
        }
    )
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rbac-probe-no-finalizers"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role["metadata"]["name"],
            },
            "subjects": [{"kind": "ServiceAccount", "name": probe, "namespace": namespace}],
        }
    )
    with pytest.raises(ApiException) as refused:
        kube.create(workflow, dry_run=True, as_user=f"system:serviceaccount:{namespace}:{probe}")
    assert refused.value.status == 403
    assert "blockOwnerDeletion" in str(refused.value.body)


DENIED = [
    # (verb, group, resource, namespaced?, extra attributes)
    ("get", "", "secrets", True, {}),
    ("create", "", "secrets", True, {}),
    ("update", "", "secrets", True, {"name": "another-secret"}),
    ("list", "", "secrets", False, {}),
    ("watch", "", "secrets", True, {}),
    ("get", "", "configmaps", True, {}),
    ("create", "", "configmaps", True, {}),  # in Argo's namespace only
    ("delete", "", "configmaps", True, {}),
    ("list", "", "configmaps", True, {}),
    ("create", "", "pods", True, {}),
    ("create", "", "pods", True, {"subresource": "exec"}),
    ("create", "", "serviceaccounts", True, {"subresource": "token"}),
    ("list", "", "namespaces", False, {}),
    ("patch", "", "events", True, {}),
    ("delete", "", "events", True, {}),
    ("create", "apps", "deployments", True, {}),
    ("patch", "apps", "deployments", True, {}),
    ("delete", "mlops.gitops.dev", "mlpipelines", True, {}),
    ("create", "mlops.gitops.dev", "mlpipelines", True, {}),
    ("update", "mlops.gitops.dev", "mlpipelines", True, {}),
    ("deletecollection", "mlops.gitops.dev", "mlpipelines", True, {}),
    ("update", "argoproj.io", "workflows", True, {}),
    ("get", "argoproj.io", "workflowtemplates", True, {}),
    ("create", "argoproj.io", "workflowtemplates", True, {}),
    ("patch", "kopf.dev", "clusterkopfpeerings", False, {"name": "another-operator"}),
    ("delete", "kopf.dev", "clusterkopfpeerings", False, {"name": "mlpipeline-operator"}),
    ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", False, {}),
    (
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        False,
        {"name": "another-webhook"},
    ),
    ("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", False, {}),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", False, {}),
    ("create", "rbac.authorization.k8s.io", "clusterroles", False, {}),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", False, {}),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", False, {}),
    ("create", "rbac.authorization.k8s.io", "rolebindings", True, {}),
]


@pytest.mark.parametrize(
    ("verb", "group", "resource", "namespaced", "extra"),
    DENIED,
    ids=[
        f"{v}-{g or 'core'}-{r}{'-' + e.get('subresource', e.get('name', '')) if e else ''}"
        for v, g, r, _, e in DENIED
    ],
)
def test_denied(
    chart_plane: ChartPlane,
    installed_chart: list[dict[str, Any]],
    verb: str,
    group: str,
    resource: str,
    namespaced: bool,
    extra: dict[str, str],
) -> None:
    assert not access(
        chart_plane.kube, verb, group, resource, "ml" if namespaced else None, **extra
    )


def test_granted_rights_answer_yes(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]]
) -> None:
    """The counterpart of test_denied: the SubjectAccessReviews are not denying everything."""
    kube = chart_plane.kube
    assert access(kube, "create", "argoproj.io", "workflows", "ml")
    assert access(kube, "patch", "argoproj.io", "workflows", "ml")  # a stop request
    assert access(kube, "update", "mlops.gitops.dev", "mlpipelines", "ml", subresource="status")
    assert access(kube, "update", "mlops.gitops.dev", "mlpipelines", "ml", subresource="finalizers")
    assert access(kube, "patch", "kopf.dev", "clusterkopfpeerings", name="mlpipeline-operator")
    assert access(kube, "list", "mlops.gitops.dev", "mlpipelines")  # every namespace
    assert access(kube, "create", "", "configmaps", "argo")  # the step caches
    assert access(kube, "delete", "", "configmaps", "argo")
    assert access(kube, "get", "", "configmaps", "argo")  # stale entries removed before a run
    assert access(kube, "patch", "", "configmaps", "argo")
    assert access(kube, "list", "", "configmaps", "argo")  # the sweep of deleted pipelines' caches
    # The webhook's certificates and CA bundle.
    assert access(kube, "update", "", "secrets", NAMESPACE, name=WEBHOOK)
    assert access(
        kube,
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        name=WEBHOOK,
    )


def test_namespaced_mode_works_in_its_namespace_only(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The namespaced chart's Role, RoleBinding and KopfPeering: the operator runs a pipeline to
    success in its namespace, without a refused request; elsewhere it has no rights."""
    kube = chart_plane.kube
    release_namespace, watched, objects = namespaced_release(kube, "ns")
    webhook_kinds = (
        "Secret",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
    )
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "KopfPeering") or (
            obj["kind"] in webhook_kinds and obj["metadata"]["name"] == "ns-operator-webhook"
        ):
            kube.apply(obj)
    # Cluster-wide, only the webhook's get and patch on its own ValidatingWebhookConfiguration.
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "ns-operator-webhook"
    username = f"system:serviceaccount:{release_namespace}:ns-operator"
    kubeconfig = service_account_kubeconfig(
        chart_plane.plane, release_namespace, "ns-operator", tmp_path / "kubeconfig"
    )
    webhook = [
        f"--webhook=https://127.0.0.1:{free_port()}/validate",
        f"--webhook-namespace={release_namespace}",
        *(
            f"--webhook-{flag}=ns-operator-webhook"
            for flag in ("secret", "service", "configuration")
        ),
    ]
    op = OperatorProcess(
        chart_plane.plane, tmp_path, ["--namespace", watched, *webhook], kubeconfig=kubeconfig
    )
    op.start()
    try:
        wait(
            lambda: peering_record(kube, "KopfPeering", watched),
            TIMEOUT,
            "the KopfPeering record",
            op,
        )
        wait(lambda: ca_bundle(kube, "ns-operator-webhook"), TIMEOUT, "the CA injected", op)
        kube.create(make_pipeline(watched, "demo"))
        first = run_name(watched, "demo", 1)
        wait(lambda: get_or_none(kube, "Workflow", watched, first), TIMEOUT, "run", op)
        done = workflow_status(first, "Succeeded", {}, finished="2026-01-01T01:00:00Z")
        kube.patch(ARGO_API, "Workflow", first, {"status": done}, watched)
        wait_status(kube, watched, "demo", op, TIMEOUT, phase="Succeeded")
    finally:
        op.stop()
    events = chart_plane.audit_events(username)
    refused = [e for e in events if e.get("responseStatus", {}).get("code") == 403]
    assert events and not refused, [(e["verb"], e.get("objectRef")) for e in refused]
    # Its namespace, and Argo's for the sweep of step caches (which lists them at start).
    elsewhere = {
        (e["objectRef"].get("namespace"), e["objectRef"].get("resource"), e["verb"])
        for e in events
        if e.get("objectRef") and e["objectRef"].get("namespace") != watched
    }
    assert elsewhere == {
        ("argo", "configmaps", "list"),
        (release_namespace, "secrets", "get"),
        (release_namespace, "secrets", "update"),
        (None, "validatingwebhookconfigurations", "get"),
        (None, "validatingwebhookconfigurations", "patch"),
    }
    roles = [*of_kind(objects, "Role"), find(objects, "ClusterRole", "ns-operator-webhook")]
    assert used(events) <= granted([rule for role in roles for rule in role["rules"]])


def test_missing_peering_is_reported_until_the_operator_may_create_it(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]], tmp_path: Path
) -> None:
    """An operator whose Role lacks create on its KopfPeering: it says what blocks leader
    election at once and again at every retry, does nothing meanwhile, and goes on by itself
    once the right is granted."""
    kube = chart_plane.kube
    release_namespace, watched, objects = namespaced_release(kube, "np")
    create_peering = {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["create"]}
    for obj in objects:
        if obj["kind"] == "Role" and obj["metadata"]["namespace"] == watched:
            assert create_peering in obj["rules"]
            obj["rules"].remove(create_peering)
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            kube.apply(obj)
    kubeconfig = service_account_kubeconfig(
        chart_plane.plane, release_namespace, "np-operator", tmp_path / "kubeconfig"
    )
    op = OperatorProcess(
        chart_plane.plane,
        tmp_path,
        ["--namespace", watched],
        kubeconfig=kubeconfig,
        env={"MLPIPELINE_PEERING_RETRY_INTERVAL": "1"},
    )
    # One line: what waits, why (the API server's own words), what would fix it.
    message = (
        f"leader election waits for the KopfPeering in {watched} 'mlpipeline-operator', which "
        f"could not be created (create KopfPeering {watched}/mlpipeline-operator: API server "
        "answered 403: kopfpeerings.kopf.dev is forbidden: User "
        f'"system:serviceaccount:{release_namespace}:np-operator" cannot create resource '
        f'"kopfpeerings" in API group "kopf.dev" in the namespace "{watched}"): grant create on '
        "it to the operator's service account (the chart does), or run with --standalone (one "
        "replica only); retrying every 1 s\n"
    )
    op.start()
    try:
        wait(lambda: op.log().count(message) >= 3, TIMEOUT, "the error, repeated", op)
        kube.create(make_pipeline(watched, "waiting"))
        seen = op.log().count(message)
        # Two retries later (the operator's own clock), still no run: kopf pauses without peering.
        wait(lambda: op.log().count(message) >= seen + 2, TIMEOUT, "two more retries", op)
        assert not runs(kube, watched, "waiting")
        grant = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "np-operator-peering", "namespace": watched},
            "rules": [create_peering],
        }
        kube.apply(grant)
        kube.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "np-operator-peering", "namespace": watched},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "np-operator-peering",
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": "np-operator",
                        "namespace": release_namespace,
                    }
                ],
            }
        )
        # kopf resumes once the object exists (it writes its own record there later).
        wait_status(kube, watched, "waiting", op, TIMEOUT, phase="Pending")
        assert kube.get("kopf.dev/v1", "KopfPeering", "mlpipeline-operator", watched)
    finally:
        op.stop()
    log = op.log()
    created = log.index(f"created the KopfPeering in {watched} 'mlpipeline-operator'")
    assert log.rindex(message) < created  # no error after the create succeeded
