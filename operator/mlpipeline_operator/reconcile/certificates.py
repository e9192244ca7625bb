"""The webhook's own certificate authority and serving certificate, made with `cryptography`
when cert-manager does not provide them. Pure: PEM bytes in and out, no API calls."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long-lived: nothing renews them but the operator at its start (see `usable`), and an expired
# certificate would refuse every MLPipeline write with failurePolicy Fail.
VALIDITY = datetime.timedelta(days=10 * 365)
# A certificate expiring sooner than this is issued again at the operator's start.
RENEW_BEFORE = datetime.timedelta(days=30)
COMMON_NAME = "mlpipeline-operator-webhook"


@dataclass(frozen=True)
class WebhookCertificates:
    """PEM: the CA that the API server trusts (the ValidatingWebhookConfiguration's caBundle),
    and the serving certificate and key it signed."""

    ca: bytes
    cert: bytes
    key: bytes


def service_names(service: str, namespace: str) -> list[str]:
    """The DNS names by which the API server calls a Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _subject_alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(hosts: Sequence[str], now: datetime.datetime | None = None) -> WebhookCertificates:
    """A new CA and a serving certificate for `hosts` (DNS names or IP addresses)."""
    now = now or datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)  # the API server's clock may be behind
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{COMMON_NAME}-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.SubjectAlternativeName(_subject_alternative_names(hosts)), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return WebhookCertificates(
        ca=ca_cert.public_bytes(pem),
        cert=cert.public_bytes(pem),
        key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def usable(
    certificates: WebhookCertificates, hosts: Sequence[str], now: datetime.datetime | None = None
) -> bool:
    """Whether the serving certificate names every host, is signed by the CA, and stays valid
    for `RENEW_BEFORE` at least. Anything unreadable is not usable (issued again)."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        ca = x509.load_pem_x509_certificate(certificates.ca)
        cert = x509.load_pem_x509_certificate(certificates.cert)
        serialization.load_pem_private_key(certificates.key, password=None)
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    wanted = _subject_alternative_names(hosts)
    return (
        all(name in names for name in wanted)
        and min(ca.not_valid_after_utc, cert.not_valid_after_utc) - now > RENEW_BEFORE
    )
