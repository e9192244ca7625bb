"""`mlpipeline operator` flags and their environment defaults."""

from __future__ import annotations

import pytest

from mlpipeline_operator.cli_types import ArgumentParser
from mlpipeline_operator.reconcile.config import (
    OperatorConfig,
    add_arguments,
    config_error,
    from_arguments,
)

METRICS_EXPECTED = (
    "expected http://HOST:PORT/PATH, e.g. http://0.0.0.0:9090/metrics, or empty to disable"
)


def parse(argv: list[str], env: dict[str, str]) -> OperatorConfig:
    parser = ArgumentParser(prog="mlpipeline operator")
    add_arguments(parser, env)
    return from_arguments(parser.parse_args(argv))


def test_defaults_watch_every_namespace_with_peering() -> None:
    config = parse([], {})
    assert config.clusterwide and config.namespaces == ()
    assert config.peering == "mlpipeline-operator"
    assert 1 <= config.priority <= 32767
    assert config.liveness == "http://0.0.0.0:8080/healthz"
    assert config.metrics == "http://0.0.0.0:9090/metrics"
    assert config.log_format == "full"
    assert config.peering_lifetime == 10
    assert config.argo_namespace == "argo"
    assert (config.policy, config.policy_interval) == (None, 10.0)


def test_the_tenancy_policy_is_a_config_map_by_namespace_and_name() -> None:
    env = {"MLPIPELINE_POLICY": "ops/tenancy", "MLPIPELINE_POLICY_INTERVAL": "2"}
    config = parse([], env)
    assert (config.policy, config.policy_interval) == (("ops", "tenancy"), 2.0)
    assert parse(["--policy", "a/b"], env).policy == ("a", "b")


def test_environment_sets_defaults_and_flags_win() -> None:
    env = {
        "MLPIPELINE_NAMESPACES": "ml, staging",
        "MLPIPELINE_PRIORITY": "7",
        "MLPIPELINE_PROMOTION_IMAGE": "example/op:2",
        "MLPIPELINE_LOG_FORMAT": "json",
        "MLPIPELINE_PEERING": "",
        "MLPIPELINE_WATCH_TIMEOUT": "60",
        "MLPIPELINE_INACTIVITY_TIMEOUT": "30",
        "MLPIPELINE_LIVENESS": "",
        "MLPIPELINE_METRICS": "",
        "MLPIPELINE_PEERING_LIFETIME": "30",
        "MLPIPELINE_ARGO_NAMESPACE": "workflows",
    }
    config = parse([], env)
    assert config.argo_namespace == "workflows"
    assert parse(["--argo-namespace", "wf"], env).argo_namespace == "wf"
    assert config.peering_lifetime == 30
    assert config.namespaces == ("ml", "staging") and not config.clusterwide
    assert (config.priority, config.promotion_image, config.log_format) == (
        7,
        "example/op:2",
        "json",
    )
    assert config.peering is None and config.liveness is None and config.metrics is None
    assert (config.watch_timeout, config.inactivity_timeout) == (60, 30.0)
    flags = parse(
        ["-n", "other", "--priority", "9", "--standalone"], {"MLPIPELINE_NAMESPACES": "ml"}
    )
    assert flags.namespaces == ("other",) and flags.priority == 9 and flags.peering is None
    served = parse(
        ["--metrics", "http://127.0.0.1:9100/m"], {"MLPIPELINE_METRICS": "http://0.0.0.0:1/x"}
    )
    assert served.metrics == "http://127.0.0.1:9100/m"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLPIPELINE_PRIORITY", "high", "expected an integer"),
        ("MLPIPELINE_WATCH_TIMEOUT", "0", "expected a positive integer"),
        (
            "MLPIPELINE_INACTIVITY_TIMEOUT",
            "nan",
            "expected a number of seconds > 0, e.g. 30 or 0.5",
        ),
        (
            "MLPIPELINE_PEERING_RETRY_INTERVAL",
            "-1",
            "expected a number of seconds > 0, e.g. 30 or 0.5",
        ),
        ("MLPIPELINE_LOG_FORMAT", "xml", "expected one of full, plain, json"),
        *[
            ("MLPIPELINE_METRICS", url, METRICS_EXPECTED)
            for url in (
                "9090",
                "https://0.0.0.0:9090/metrics",
                "http://0.0.0.0/metrics",
                "http://0.0.0.0:90x/metrics",
                "http://0.0.0.0:9090",
            )
        ],
        ("MLPIPELINE_PEERING_LIFETIME", "2.5", "expected a positive integer"),
        *[
            (
                "MLPIPELINE_POLICY",
                ref,
                "expected NAMESPACE/NAME, e.g. mlpipeline-system/tenancy-policy",
            )
            for ref in ("tenancy", "ops/", "/tenancy", "a/b/c")
        ],
        ("MLPIPELINE_POLICY_INTERVAL", "0", "expected a number of seconds > 0, e.g. 30 or 0.5"),
    ],
)
def test_a_bad_variable_is_named(
    name: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse([], {name: value})
    assert caught.value.code == 2
    assert capsys.readouterr().err == f'mlpipeline operator: {name}="{value}": {expected}\n'


def test_a_bad_metrics_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(["--metrics", "localhost:9090"], {})
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'mlpipeline operator: error: argument --metrics: "localhost:9090": {METRICS_EXPECTED}'
    )


def test_webhook_settings_from_the_environment_and_flags() -> None:
    assert parse([], {}).webhook is None  # no webhook unless asked
    env = {
        "MLPIPELINE_WEBHOOK": "https://0.0.0.0:9443/validate",
        "MLPIPELINE_WEBHOOK_NAMESPACE": "ops",
        "MLPIPELINE_WEBHOOK_SECRET": "certs",
        "MLPIPELINE_WEBHOOK_SERVICE": "hook",
        "MLPIPELINE_WEBHOOK_CONFIGURATION": "",
    }
    config = parse([], env)
    assert (config.webhook, config.webhook_namespace, config.webhook_secret) == (
        "https://0.0.0.0:9443/validate",
        "ops",
        "certs",
    )
    assert (config.webhook_service, config.webhook_configuration) == ("hook", None)
    assert config_error(config) is None
    flags = parse(["--webhook-cert-dir", "/certs", "--webhook-configuration", "vwc"], env)
    assert (flags.webhook_cert_dir, flags.webhook_configuration) == ("/certs", "vwc")


def test_a_webhook_needs_its_namespace_or_a_certificate_directory() -> None:
    url = ["--webhook", "https://0.0.0.0:9443/validate"]
    assert config_error(parse(url, {})) == (
        "--webhook without --webhook-cert-dir needs --webhook-namespace (env "
        "MLPIPELINE_WEBHOOK_NAMESPACE): the operator's namespace, where it keeps its "
        "certificates in the Secret --webhook-secret"
    )
    assert config_error(parse([*url, "--webhook-cert-dir", "/certs"], {})) is None


@pytest.mark.parametrize(
    "url", ["http://0.0.0.0:9443/validate", "https://0.0.0.0/validate", "https://0.0.0.0:9443"]
)
def test_a_bad_webhook_url_is_named(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse([], {"MLPIPELINE_WEBHOOK": url})
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        f'mlpipeline operator: MLPIPELINE_WEBHOOK="{url}": expected https://HOST:PORT/PATH, '
        "e.g. https://0.0.0.0:9443/validate, or empty to disable\n"
    )
