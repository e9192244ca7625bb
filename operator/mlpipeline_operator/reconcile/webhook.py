"""The validating admission webhook, served over HTTPS by every replica (leader or not), in the
operator's event loop. What it answers is `admission_review` (admission.py); this module only
serves it and keeps its certificates.

Certificates come from one of two places:
- a directory (`--webhook-cert-dir`, `tls.crt` and `tls.key`): cert-manager's Secret mounted by
  the chart; cert-manager's cainjector puts its CA into the ValidatingWebhookConfiguration. The
  files are read again every `RELOAD_INTERVAL`, so that a renewed certificate is served.
- the operator itself: one Secret (`--webhook-secret`) in its namespace holds a CA and a
  serving certificate, issued by the first replica that finds it empty (the others read it),
  and the operator patches the CA into the caBundle of its ValidatingWebhookConfiguration
  (`--webhook-configuration`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from mlpipeline_operator.admission import admission_review
from mlpipeline_operator.api.constants import LABEL_MANAGED_BY, MANAGER
from mlpipeline_operator.policy import SINGLE_TENANT, Tenancy
from mlpipeline_operator.reconcile.certificates import (
    WebhookCertificates,
    issue,
    service_names,
    usable,
)
from mlpipeline_operator.reconcile.config import OperatorConfig
from mlpipeline_operator.reconcile.kube import Conflict, Kube, Obj, Refused, Retryable

T = TypeVar("T")
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
# Seconds between readings of a certificate directory that cert-manager renews.
RELOAD_INTERVAL = 60.0
# Seconds between attempts to get the certificates or set the caBundle, each failure logged.
RETRY_INTERVAL = 10.0
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def certificate_hosts(url: str, dns_names: Sequence[str]) -> list[str]:
    """What the serving certificate must name: the Service's DNS names, and the address the
    server listens on when it is a particular one (a webhook called by URL)."""
    host = urlsplit(url).hostname or ""
    return [*dns_names, *([] if host in _WILDCARD_HOSTS else [host])]


def _secret_certificates(secret: Obj) -> WebhookCertificates | None:
    data = secret.get("data") or {}
    try:
        return WebhookCertificates(
            ca=base64.b64decode(data["ca.crt"]),
            cert=base64.b64decode(data["tls.crt"]),
            key=base64.b64decode(data["tls.key"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _secret_data(certificates: WebhookCertificates) -> dict[str, str]:
    return {
        "ca.crt": base64.b64encode(certificates.ca).decode(),
        "tls.crt": base64.b64encode(certificates.cert).decode(),
        "tls.key": base64.b64encode(certificates.key).decode(),
    }


async def ensure_certificates(
    kube: Kube, namespace: str, name: str, hosts: Sequence[str]
) -> WebhookCertificates:
    """The certificates in the Secret `namespace/name`, issued and stored first when it is
    missing, empty or not usable for `hosts`. Replicas starting at once agree: a create or an
    update carries the state it was computed from, and the one that loses the race (409) reads
    what the winner stored."""
    while True:
        secret = await kube.get_secret(namespace, name)
        stored = None if secret is None else _secret_certificates(secret)
        if stored is not None and usable(stored, hosts):
            return stored
        issued = issue(hosts)
        try:
            if secret is None:
                manifest: Obj = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "kubernetes.io/tls",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {LABEL_MANAGED_BY: MANAGER},
                    },
                    "data": _secret_data(issued),
                }
                if await kube.create_secret(manifest):
                    return issued
            else:
                await kube.replace_secret({**secret, "data": _secret_data(issued)})
                return issued
        except Conflict:
            pass  # another replica stored its certificates first: read them


async def inject_ca_bundle(kube: Kube, name: str, ca: bytes) -> bool:
    """Set the caBundle of every webhook of the ValidatingWebhookConfiguration `name` to `ca`;
    False when they all had it already."""
    bundle = base64.b64encode(ca).decode()
    while True:
        configuration = await kube.get_webhook_configuration(name)
        webhooks: list[Obj] = configuration.get("webhooks") or []
        if all(hook.get("clientConfig", {}).get("caBundle") == bundle for hook in webhooks):
            return False
        patched = [
            {**hook, "clientConfig": {**hook.get("clientConfig", {}), "caBundle": bundle}}
            for hook in webhooks
        ]
        version = configuration["metadata"]["resourceVersion"]
        try:
            await kube.patch_webhook_configuration(
                name, {"metadata": {"resourceVersion": version}, "webhooks": patched}
            )
            return True
        except Conflict:
            pass  # changed since it was read (another replica, an upgrade): read it again


class WebhookServer:
    """HTTPS: POST of an AdmissionReview on the URL's path, answered by `admission_review`."""

    def __init__(self, url: str, tenancy: Callable[[], Tenancy] = lambda: SINGLE_TENANT) -> None:
        parts = urlsplit(url)
        self.tenancy = tenancy  # the policy in force at each request
        self.host = parts.hostname or "0.0.0.0"
        self.port = parts.port or 443
        self.path = parts.path or "/"
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._runner: web.AppRunner | None = None

    def load(self, cert: bytes, key: bytes) -> None:
        """Serve this certificate from the next connection on."""
        # The ssl module reads certificates from files only.
        with tempfile.TemporaryDirectory() as directory:
            cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert_file.write_bytes(cert)
            key_file.touch(0o600)
            key_file.write_bytes(key)
            self.context.load_cert_chain(cert_file, key_file)

    async def _review(self, request: web.Request) -> web.Response:
        try:
            review: Any = json.loads(await request.read())
            answer = admission_review(review, self.tenancy())
        except ValueError as error:  # not JSON, not an AdmissionReview
            return web.Response(status=400, text=f"{error}\n")
        return web.json_response(answer)

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)  # the object, and the old one
        app.router.add_post(self.path, self._review)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=self.context, reuse_address=True
        )
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_webhook(
    server: WebhookServer, kube: Kube, config: OperatorConfig, logger: Logger
) -> None:
    """Serve the admission webhook with the certificate of a directory, or with its own."""
    assert config.webhook is not None
    try:
        if config.webhook_cert_dir is not None:
            await serve_with_certificate_files(server, Path(config.webhook_cert_dir), logger)
            return
        assert config.webhook_namespace is not None  # see config_error
        hosts = certificate_hosts(
            config.webhook, service_names(config.webhook_service, config.webhook_namespace)
        )
        await serve_with_own_certificates(
            server,
            kube,
            config.webhook_namespace,
            config.webhook_secret,
            config.webhook_configuration,
            hosts,
            RETRY_INTERVAL,
            logger,
        )
    except (OSError, ssl.SSLError) as error:  # the port taken, certificate files unreadable
        logger.error("the admission webhook is not served: %s", error)


async def serve_with_own_certificates(
    server: WebhookServer,
    kube: Kube,
    namespace: str,
    secret: str,
    configuration: str | None,
    hosts: Sequence[str],
    retry_interval: float,
    logger: Logger,
) -> None:
    """Get the certificates from the Secret (issuing them if need be), serve, and put the CA
    into the webhook configuration; each step retried, with what blocks it logged, until done."""
    certificates = await _retried(
        lambda: ensure_certificates(kube, namespace, secret, hosts),
        f"the webhook's certificates in the Secret {namespace}/{secret}",
        retry_interval,
        logger,
    )
    server.load(certificates.cert, certificates.key)
    await server.start()
    logger.info("serving the admission webhook on port %d", server.port)
    if configuration is not None and await _retried(
        lambda: inject_ca_bundle(kube, configuration, certificates.ca),
        f"the caBundle of the ValidatingWebhookConfiguration {configuration}",
        retry_interval,
        logger,
    ):
        logger.info("set the caBundle of the ValidatingWebhookConfiguration %s", configuration)


async def serve_with_certificate_files(
    server: WebhookServer, directory: Path, logger: Logger
) -> None:
    """Serve the certificate of `directory` (tls.crt, tls.key), read again every
    `RELOAD_INTERVAL` seconds: cert-manager renews it in place."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    loaded = (cert.read_bytes(), key.read_bytes())
    server.load(*loaded)
    await server.start()
    logger.info("serving the admission webhook on port %d", server.port)
    while True:
        await asyncio.sleep(RELOAD_INTERVAL)
        try:
            current = (cert.read_bytes(), key.read_bytes())
            if current != loaded:
                server.load(*current)
                loaded = current
                logger.info("serving the renewed webhook certificate of %s", directory)
        except (OSError, ssl.SSLError) as error:  # halfway through a renewal: next time
            logger.warning("webhook certificate of %s not read again: %s", directory, error)


async def _retried(
    call: Callable[[], Awaitable[T]], what: str, retry_interval: float, logger: Logger
) -> T:
    while True:
        try:
            return await call()
        except (Refused, Retryable) as error:
            hint = {
                403: "grant the operator's service account its rights on it (the chart does)",
                404: "create it (the chart does)",
            }.get(getattr(error, "status", 0) or 0, "check the API server")
            logger.error(
                "the admission webhook waits for %s: %s: %s; retrying every %g s",
                what,
                error,
                hint,
                retry_interval,
            )
        await asyncio.sleep(retry_interval)
