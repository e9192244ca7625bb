"""The webhook's own certificates: issued for the names the API server calls, kept in one
Secret that replicas starting at once agree on."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from mlpipeline_operator.reconcile.certificates import issue, service_names, usable
from mlpipeline_operator.reconcile.kube import Conflict, Kube
from mlpipeline_operator.reconcile.webhook import (
    _secret_certificates,
    certificate_hosts,
    ensure_certificates,
)

HOSTS = service_names("hook", "ops")
Obj = dict[str, Any]


def test_service_names_and_the_listening_address() -> None:
    assert HOSTS == ["hook", "hook.ops", "hook.ops.svc", "hook.ops.svc.cluster.local"]
    assert certificate_hosts("https://0.0.0.0:9443/validate", HOSTS) == HOSTS
    assert certificate_hosts("https://127.0.0.1:9443/validate", ["hook"]) == ["hook", "127.0.0.1"]


def test_an_issued_certificate_is_trusted_through_its_ca_for_every_host() -> None:
    certificates = issue([*HOSTS, "127.0.0.1"])
    assert usable(certificates, [*HOSTS, "127.0.0.1"])
    ca = x509.load_pem_x509_certificate(certificates.ca)
    cert = x509.load_pem_x509_certificate(certificates.cert)
    policy = PolicyBuilder().store(Store([ca]))
    for name in (DNSName("hook.ops.svc"), IPAddress(ipaddress.IPv4Address("127.0.0.1"))):
        chain = policy.build_server_verifier(name).verify(cert, [])
        assert chain[-1] == ca
    stranger = PolicyBuilder().store(Store([x509.load_pem_x509_certificate(issue(HOSTS).ca)]))
    with pytest.raises(VerificationError):
        stranger.build_server_verifier(DNSName("hook.ops.svc")).verify(cert, [])


def test_a_certificate_is_not_usable_for_other_hosts_near_its_end_or_with_another_ca() -> None:
    certificates = issue(HOSTS)
    assert not usable(certificates, [*HOSTS, "127.0.0.1"])
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10 * 365 - 29)
    assert not usable(certificates, HOSTS, now=later)
    other = issue(HOSTS)
    assert not usable(type(certificates)(other.ca, certificates.cert, certificates.key), HOSTS)
    assert not usable(type(certificates)(b"", b"", b""), HOSTS)


class Secrets:
    """The Secret calls of `Kube`, in memory; `racer` stores its own Secret just before the
    first write of the replica under test, as a replica starting at the same time would."""

    def __init__(self, existing: Obj | None = None, racer: Obj | None = None) -> None:
        self.secret = existing
        self.racer = racer
        self.writes = 0

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        return self.secret

    def _race(self) -> None:
        if self.racer is not None:
            self.secret, self.racer = self.racer, None
            raise Conflict("lost")

    async def create_secret(self, manifest: Obj) -> bool:
        self.writes += 1
        self._race()
        if self.secret is not None:
            return False
        self.secret = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "1"}}
        return True

    async def replace_secret(self, manifest: Obj) -> None:
        self.writes += 1
        self._race()
        self.secret = manifest


def ensure(secrets: Secrets) -> Any:
    return asyncio.run(ensure_certificates(cast(Kube, secrets), "ops", "hook", HOSTS))


def stored(secret: Obj | None) -> Any:
    assert secret is not None
    return _secret_certificates(secret)


def test_a_missing_secret_is_created_with_the_issued_certificates() -> None:
    secrets = Secrets()
    certificates = ensure(secrets)
    assert secrets.secret is not None and secrets.secret["type"] == "kubernetes.io/tls"
    assert stored(secrets.secret) == certificates and usable(certificates, HOSTS)


def test_a_usable_secret_is_read_and_kept() -> None:
    secrets = Secrets()
    first = ensure(secrets)
    assert ensure(secrets) == first and secrets.writes == 1


def test_the_loser_of_a_create_race_serves_the_winners_certificates() -> None:
    winner = Secrets()
    ensure(winner)
    secrets = Secrets(racer=winner.secret)
    assert ensure(secrets) == stored(winner.secret)


def test_the_empty_secret_of_the_chart_is_filled_and_the_loser_reads_the_winners() -> None:
    empty: Obj = {"metadata": {"name": "hook", "namespace": "ops", "resourceVersion": "7"}}
    filled = Secrets(existing=dict(empty))
    certificates = ensure(filled)
    assert stored(filled.secret) == certificates
    racing = Secrets(existing=dict(empty), racer=filled.secret)
    assert ensure(racing) == certificates and racing.writes == 1
