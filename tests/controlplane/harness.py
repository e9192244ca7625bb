"""A real Kubernetes control plane for tests: etcd + kube-apiserver (+ kube-controller-manager).

The binaries come from `hack/build-binaries.sh` (see docs/testing.md):

- ``$MLPIPELINE_BIN_DIR`` (set by ``make`` for pytest), else the cache's ``bin/current`` link;
- ``$KUBEBUILDER_ASSETS``, when set, supplies ``kube-apiserver`` and ``etcd`` instead.

A missing binary is an error (:class:`MissingBinaryError`), never a skip.

Everything listens on 127.0.0.1 on free ports. Processes run in their own process group, get
SIGKILL if this Python process dies (``PR_SET_PDEATHSIG``), and are stopped by
:meth:`ControlPlane.stop`, by ``atexit`` and on SIGTERM/SIGHUP. Pure Python: no kopf here.

Run ``python -m tests.controlplane`` (or ``make cluster``) for a control plane in the foreground.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests import paths

__all__ = [
    "ENV_BIN_DIR",
    "ENV_CACHE_DIR",
    "ENV_KUBEBUILDER_ASSETS",
    "REPO_ROOT",
    "ApiException",
    "ControlPlane",
    "ControlPlaneError",
    "Kube",
    "MissingBinaryError",
    "ResourceInfo",
    "argo_crd_files",
    "bin_dir",
    "find_binary",
    "load_yaml_documents",
    "project_crd_files",
]

ENV_BIN_DIR = "MLPIPELINE_BIN_DIR"
ENV_CACHE_DIR = "MLPIPELINE_CACHE_DIR"
ENV_KUBEBUILDER_ASSETS = "KUBEBUILDER_ASSETS"

REPO_ROOT = Path(__file__).resolve().parents[2]
FIELD_MANAGER = "mlpipeline-tests"
# Working directories live here; a directory whose owner died is swept on the next start.
WORK_PARENT = Path(tempfile.gettempdir()) / "mlpipeline-controlplane"
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"  # the first address of SERVICE_CIDR


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or did not become ready."""


class MissingBinaryError(ControlPlaneError):
    """A binary the tests need is not built: run `make binaries`."""


# --------------------------------------------------------------------------- locating files


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mlpipeline-operator"


def bin_dir() -> Path:
    """The directory with the built binaries: $MLPIPELINE_BIN_DIR, else <cache>/bin/current."""
    env = os.environ.get(ENV_BIN_DIR)
    directory = Path(env) if env else default_cache_dir() / "bin" / "current"
    if not directory.is_dir():
        origin = f"${ENV_BIN_DIR}" if env else "the build cache"
        raise MissingBinaryError(
            f"binaries directory {directory} (from {origin}) does not exist: run `make binaries` "
            f"(hack/build-binaries.sh) and pass its output as {ENV_BIN_DIR}"
        )
    return directory


def find_binary(name: str) -> Path:
    """The path of a built binary; kube-apiserver and etcd come from $KUBEBUILDER_ASSETS if set."""
    assets = os.environ.get(ENV_KUBEBUILDER_ASSETS)
    if assets and name in ("kube-apiserver", "etcd"):
        path = Path(assets) / name
        origin = f"${ENV_KUBEBUILDER_ASSETS}={assets}"
    else:
        path = bin_dir() / name
        origin = f"{path.parent}"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(
            f"{name} not found or not executable at {path} (from {origin}): run `make binaries`"
        )
    return path


def argo_crd_files() -> list[Path]:
    """Argo's full CRDs kept in third_party/argo-workflows/ (the version the Go modules build)."""
    files = sorted(paths.ARGO_CRD_DIR.glob("argoproj.io_*.yaml"))
    if not files:
        raise ControlPlaneError(
            f"no argoproj.io_*.yaml CRDs in {paths.ARGO_CRD_DIR}: run `make argo-reference`"
        )
    return files


def project_crd_files() -> list[Path]:
    files = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    if not files:
        raise ControlPlaneError(f"no CRD files in {REPO_ROOT / 'crds'}")
    return files


_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_JSON_CACHE_MIN_BYTES = 256 * 1024


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file, each a mapping.

    Argo's CRDs are megabytes of YAML (seconds to parse even with libyaml): a large file is
    parsed once and kept as JSON in the cache, keyed by its content hash.
    """
    data = path.read_bytes()
    cache_file: Path | None = None
    if len(data) >= _JSON_CACHE_MIN_BYTES:
        digest = hashlib.sha256(data).hexdigest()
        cache_file = default_cache_dir() / "yaml-json" / f"{digest}.json"
        with contextlib.suppress(OSError, ValueError):
            return cast(list[dict[str, Any]], json.loads(cache_file.read_bytes()))
    docs: list[dict[str, Any]] = []
    for doc in yaml.load_all(data, Loader=_YAML_LOADER):  # CSafeLoader or SafeLoader
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a YAML document is not a mapping")
        docs.append(cast(dict[str, Any], doc))
    if cache_file is not None:
        with contextlib.suppress(OSError):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(docs), encoding="utf-8")
            tmp.replace(cache_file)
    return docs


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    """Files of the throwaway PKI of one control plane."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_pki(directory: Path, serving_ips: Sequence[str] = ()) -> Pki:
    """A CA, a serving cert for 127.0.0.1/localhost (and ``serving_ips``), an admin client
    cert, SA signing keys. :func:`issue_client_certificate` adds more client identities."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlpipeline-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    serving_cert, serving_key = leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in serving_ips),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    admin_cert, admin_key = leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "mlpipeline-test-admin"),
            ]
        ),
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
        None,
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pem = serialization.Encoding.PEM
    return Pki(
        ca_cert=_write(directory / "ca.crt", ca_cert.public_bytes(pem)),
        ca_key=_write(directory / "ca.key", _key_pem(ca_key), private=True),
        serving_cert=_write(directory / "apiserver.crt", serving_cert.public_bytes(pem)),
        serving_key=_write(directory / "apiserver.key", _key_pem(serving_key), private=True),
        admin_cert=_write(directory / "admin.crt", admin_cert.public_bytes(pem)),
        admin_key=_write(directory / "admin.key", _key_pem(admin_key), private=True),
        sa_key=_write(directory / "sa.key", _key_pem(sa_key), private=True),
        sa_pub=_write(
            directory / "sa.pub",
            sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        ),
    )


def issue_client_certificate(
    pki: Pki, name: str, common_name: str, organization: str | None = None
) -> tuple[Path, Path]:
    """A client certificate and key signed by the PKI's CA, written beside it as
    ``<name>.crt``/``<name>.key``: the identity ``common_name`` in group ``organization``."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca_cert.not_valid_before_utc)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = pki.ca_cert.parent
    return (
        _write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
        _write(directory / f"{name}.key", _key_pem(key), private=True),
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGKILL when the parent goes away."""
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class ManagedProcess:
    """A child process in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: the child's whole environment (default: this process's)."""
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # The leader may be gone while others of its group live on: kill the group regardless.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Every live control plane (and cluster), stopped at exit and on SIGTERM/SIGHUP.
_LIVE: set[Stoppable] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    with _LIVE_LOCK:
        planes = list(_LIVE)
    for plane in planes:
        with contextlib.suppress(Exception):
            plane.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    # Exit the way the signal would have, after cleaning up.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def stop_at_exit(obj: Stoppable) -> None:
    """Stop ``obj`` at exit and on SIGTERM/SIGHUP, unless :func:`forget_at_exit` comes first."""
    _install_cleanup_handlers()
    with _LIVE_LOCK:
        _LIVE.add(obj)


def forget_at_exit(obj: Stoppable) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(obj)


def _install_cleanup_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


def _sweep_stale_workdirs() -> None:
    """Remove working directories left by control planes whose owner process died."""
    if not WORK_PARENT.is_dir():
        return
    for directory in WORK_PARENT.iterdir():
        owner = directory / "owner.pid"
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            continue


# --------------------------------------------------------------------------- HTTP probes


def unverified_context() -> ssl.SSLContext:
    """For health probes of components that serve a self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path) -> Path:
    """A kubeconfig (mode 0600) for one client certificate identity on ``server``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlpipeline-test",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {"name": "user", "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [
            {
                "name": "mlpipeline-test",
                "context": {"cluster": "mlpipeline-test", "user": "user"},
            }
        ],
        "current-context": "mlpipeline-test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def _probe(
    host: str, port: int, path: str, context: ssl.SSLContext | None, timeout: float = 2.0
) -> tuple[int, str]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


def _wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    processes: Sequence[ManagedProcess] = (),
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        for proc in processes:
            if not proc.running():
                raise ControlPlaneError(
                    f"{proc.name} exited with code {proc.proc.returncode} while waiting for "
                    f"{what}; log {proc.log_path}:\n{proc.log_tail()}"
                )
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, ApiException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log_path}):\n{p.log_tail()}" for p in processes)
            raise ControlPlaneError(
                f"timed out after {timeout:.0f}s waiting for {what} {last_error}\n{tails}"
            )
        time.sleep(interval)


# --------------------------------------------------------------------------- API helpers


@dataclass(frozen=True)
class ResourceInfo:
    """Where the API serves a kind."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.kind} is namespaced: a namespace is needed")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        return base


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class Kube:
    """Small generic helpers: create / apply / get / list / patch / delete any kind.

    Every call raises :class:`kubernetes.client.exceptions.ApiException` on an error status,
    with ``status`` and the server's ``body`` (a JSON Status) as in the generated API classes.
    ``as_user`` impersonates another user (the admin may impersonate anyone); for a service
    account (``system:serviceaccount:NS:NAME``) the server adds its groups itself.
    """

    def __init__(self, api_client: k8s.ApiClient) -> None:
        """Talk to the server and identity of ``api_client``'s configuration (host, CA, client
        certificate or bearer token). Requests go through ``http.client`` (never a proxy)."""
        self.api_client = api_client
        self._resources: dict[tuple[str, str], ResourceInfo] = {}
        config = api_client.configuration
        parsed = urllib.parse.urlsplit(str(config.host))
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError(f"expected an https:// API server URL, got {config.host!r}")
        self._host = parsed.hostname
        self._port = parsed.port or 443
        self._base_path = parsed.path.rstrip("/")
        ca = config.ssl_ca_cert
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if config.cert_file:
            key = config.key_file
            context.load_cert_chain(str(config.cert_file), str(key) if key else None)
        if not config.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._ssl_context = context
        self._auth_headers: dict[str, str] = {}
        token: object = config.get_api_key_with_prefix("authorization")
        if token:
            self._auth_headers["Authorization"] = str(token)

    # -- raw requests

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str | None = None,
        as_user: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """One API request; the response's JSON (``{}`` when empty)."""
        headers: dict[str, str] = {"Accept": "application/json", **self._auth_headers}
        payload: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            payload = json.dumps(body).encode("utf-8")  # JSON is YAML too (apply-patch+yaml)
        if as_user is not None:
            headers["Impersonate-User"] = as_user
        url = self._base_path + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        # As client-go does: a 429 with Retry-After (a resource's storage still initializing
        # right after its CRD, or throttling) is retried after the delay the server asks for.
        for _ in range(10):
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl_context
            )
            try:
                conn.request(method, url, body=payload, headers=headers)
                response = conn.getresponse()
                status, reason = response.status, response.reason
                retry_after = response.getheader("Retry-After")
                text = response.read().decode("utf-8", errors="replace")
            finally:
                conn.close()
            if status != 429 or not retry_after:
                break
            time.sleep(float(retry_after))
        if not 200 <= status < 300:
            error = ApiException(status=status, reason=reason)
            error.body = text
            raise error
        if not text:
            return {}
        return cast(dict[str, Any], json.loads(text))

    # -- discovery

    def resource(self, api_version: str, kind: str, *, refresh: bool = False) -> ResourceInfo:
        """The plural name and scope of a kind, from the server's discovery."""
        key = (api_version, kind)
        if key in self._resources and not refresh:
            return self._resources[key]
        group, version = _split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = self.request("GET", path)
        for item in listing.get("resources", []):
            if item.get("kind") == kind and "/" not in item.get("name", "/"):
                info = ResourceInfo(
                    group=group,
                    version=version,
                    plural=str(item["name"]),
                    kind=kind,
                    namespaced=bool(item.get("namespaced")),
                )
                self._resources[key] = info
                return info
        raise LookupError(f"the API server does not serve kind {kind} in {api_version}")

    def _info_for(self, obj: Mapping[str, Any]) -> ResourceInfo:
        return self.resource(str(obj["apiVersion"]), str(obj["kind"]))

    # -- object operations

    def create(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        field_validation: str = "Strict",
        dry_run: bool = False,
        as_user: str | None = None,
    ) -> dict[str, Any]:
        """POST an object (generateName works) with fieldValidation=Strict by default."""
        info = self._info_for(obj)
        ns = (namespace or obj.get("metadata", {}).get("namespace")) if info.namespaced else None
        query = [("fieldValidation", field_validation)]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request("POST", info.path(ns), body=dict(obj), query=query, as_user=as_user)

    def apply(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        field_validation: str = "Strict",
        dry_run: bool = False,
        subresource: str | None = None,
        as_user: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply (application/apply-patch+yaml) with fieldValidation=Strict."""
        info = self._info_for(obj)
        name = obj.get("metadata", {}).get("name")
        if not name:
            raise ValueError("server-side apply needs metadata.name")
        ns = (namespace or obj.get("metadata", {}).get("namespace")) if info.namespaced else None
        body = dict(obj)
        if ns and info.namespaced:
            body["metadata"] = {**body["metadata"], "namespace": ns}
        query = [("fieldManager", field_manager), ("fieldValidation", field_validation)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        path = info.path(ns, str(name))
        if subresource:
            path += f"/{subresource}"
        return self.request(
            "PATCH",
            path,
            body=body,
            query=query,
            content_type="application/apply-patch+yaml",
            as_user=as_user,
        )

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        info = self.resource(api_version, kind)
        return self.request("GET", info.path(namespace if info.namespaced else None, name))

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        as_user: str | None = None,
    ) -> list[dict[str, Any]]:
        info = self.resource(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self.request(
            "GET",
            info.path(namespace if info.namespaced else None),
            query=query,
            as_user=as_user,
        )
        return cast(list[dict[str, Any]], result.get("items", []))

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = "application/merge-patch+json",
        field_validation: str = "Strict",
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """A merge patch by default; ``subresource="status"`` patches the status subresource.
        ``field_manager``: the name the change is recorded under in managedFields (the API
        server derives one from the User-Agent otherwise)."""
        info = self.resource(api_version, kind)
        path = info.path(namespace if info.namespaced else None, name)
        if subresource:
            path += f"/{subresource}"
        body: object = [dict(p) for p in patch] if isinstance(patch, Sequence) else dict(patch)
        query = [("fieldValidation", field_validation)]
        if field_manager is not None:
            query.append(("fieldManager", field_manager))
        return self.request(
            "PATCH",
            path,
            body=body,
            query=query,
            content_type=content_type,
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = "Background",
        missing_ok: bool = True,
    ) -> None:
        info = self.resource(api_version, kind)
        body = {"propagationPolicy": propagation_policy} if propagation_policy else None
        try:
            self.request(
                "DELETE", info.path(namespace if info.namespaced else None, name), body=body
            )
        except ApiException as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[dict[str, Any] | None], bool],
        *,
        timeout: float = 30.0,
        interval: float = 0.2,
    ) -> dict[str, Any] | None:
        """Poll an object until ``predicate(obj)`` holds (``obj`` is None once it is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                obj: dict[str, Any] | None = self.get(api_version, kind, name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                obj = None
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} {namespace}/{name} did not reach the expected state")
            time.sleep(interval)

    # -- namespaces and CRDs

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        self.create(body)

    def delete_namespace(self, name: str) -> None:
        self.delete("v1", "Namespace", name)

    def apply_crds(self, files: Iterable[Path], timeout: float = 60.0) -> list[str]:
        """Server-side apply every CRD in ``files``; wait until each is Established and served."""
        crds: list[dict[str, Any]] = []
        for path in files:
            for doc in load_yaml_documents(path):
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ControlPlaneError(f"{path}: not a CustomResourceDefinition document")
                crds.append(doc)
        for crd in crds:
            self.apply(crd)
        names = [str(crd["metadata"]["name"]) for crd in crds]
        for crd in crds:
            self._wait_crd_served(crd, timeout)
        return names

    def _wait_crd_served(self, crd: Mapping[str, Any], timeout: float) -> None:
        name = str(crd["metadata"]["name"])
        spec = crd["spec"]
        group = str(spec["group"])
        plural = str(spec["names"]["plural"])
        kind = str(spec["names"]["kind"])
        versions = [str(v["name"]) for v in spec["versions"] if v.get("served", True)]

        def established(obj: dict[str, Any] | None) -> bool:
            status = (obj or {}).get("status") or {}
            conditions = status.get("conditions") or []
            return any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )

        self.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            name,
            None,
            established,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        for version in versions:
            while True:
                try:
                    info = self.resource(f"{group}/{version}", kind, refresh=True)
                    if info.plural == plural:
                        break
                except (ApiException, LookupError):
                    pass
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} version {version} is not served")
                time.sleep(0.1)


# --------------------------------------------------------------------------- the control plane


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback, with an admin identity (system:masters).

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``workdir`` holds the PKI,
    etcd's data, logs and the kubeconfig; it is removed by :meth:`stop` unless
    ``keep_workdir`` (the logs are worth keeping when debugging).
    """

    workdir: Path | None = None
    keep_workdir: bool = False
    start_timeout: float = 90.0
    extra_apiserver_args: Sequence[str] = ()
    # A control plane for a cluster where pods run (tests/e2e/cluster.py): it listens on
    # ``address`` in a network namespace of its own (well-known ports, so ``command_prefix``
    # enters that namespace), admits service accounts, authorizes nodes, and publishes its
    # address as the `kubernetes` Service's endpoint.
    runs_pods: bool = False
    address: str = "127.0.0.1"
    command_prefix: Sequence[str] = ()

    processes: dict[str, ManagedProcess] = field(default_factory=dict, init=False)
    etcd_url: str = field(default="", init=False)
    server: str = field(default="", init=False)
    kubeconfig: Path = field(default=Path(), init=False)
    pki: Pki | None = field(default=None, init=False)
    _owns_workdir: bool = field(default=False, init=False)
    _api_client: k8s.ApiClient | None = field(default=None, init=False)
    _kube: Kube | None = field(default=None, init=False)

    def __hash__(self) -> int:
        return id(self)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- life cycle

    def start(self) -> ControlPlane:
        kube_apiserver = find_binary("kube-apiserver")
        etcd = find_binary("etcd")
        stop_at_exit(self)
        if self.workdir is None:
            _sweep_stale_workdirs()
            WORK_PARENT.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix="cp-", dir=WORK_PARENT))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "owner.pid").write_text(f"{os.getpid()}\n")
        try:
            self.pki = generate_pki(
                self.workdir / "pki",
                serving_ips=[self.address, KUBERNETES_SERVICE_IP] if self.runs_pods else (),
            )
            self._start_etcd(etcd)
            self._start_apiserver(kube_apiserver)
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self, etcd: Path) -> None:
        assert self.workdir is not None
        client_port, peer_port = (2379, 2380) if self.runs_pods else (free_port(), free_port())
        self.etcd_url = f"http://{self.address}:{client_port}"
        peer_url = f"http://{self.address}:{peer_port}"
        argv = [
            *self.command_prefix,
            str(etcd),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--logger=zap",
            "--log-level=warn",
        ]
        proc = ManagedProcess("etcd", argv, self.workdir / "etcd.log")
        self.processes["etcd"] = proc

        def healthy() -> bool:
            status, body = _probe(self.address, client_port, "/health", None)
            return status == 200 and '"health":"true"' in body.replace(" ", "")

        _wait_until("etcd /health", healthy, self.start_timeout, [proc])

    def _client_ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def _start_apiserver(self, kube_apiserver: Path) -> None:
        assert self.workdir is not None and self.pki is not None
        port = 6443 if self.runs_pods else free_port()
        self.server = f"https://{self.address}:{port}"
        pki = self.pki
        if self.runs_pods:
            cluster_args = [
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={pki.admin_cert}",
                f"--kubelet-client-key={pki.admin_key}",
            ]
        else:
            cluster_args = [
                "--authorization-mode=RBAC",
                # No kubelet, no token controller: pods are never run, and the default
                # service account does not exist in new namespaces.
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
            ]
        argv = [
            *self.command_prefix,
            str(kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            *cluster_args,
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]
        proc = ManagedProcess("kube-apiserver", argv, self.workdir / "kube-apiserver.log")
        self.processes["kube-apiserver"] = proc
        context = self._client_ssl_context()

        def ready() -> bool:
            status, _ = _probe(self.address, port, "/readyz", context)
            return status == 200

        _wait_until("kube-apiserver /readyz", ready, self.start_timeout, [proc])

    def _write_kubeconfig(self) -> None:
        assert self.workdir is not None and self.pki is not None
        self.kubeconfig = write_kubeconfig(
            self.workdir / "kubeconfig",
            self.server,
            self.pki.ca_cert,
            self.pki.admin_cert,
            self.pki.admin_key,
        )

    def start_controller_manager(
        self, controllers: Sequence[str] = ("garbagecollector", "namespace")
    ) -> ManagedProcess:
        """Start kube-controller-manager with only ``controllers`` (default: garbage collection
        of owner references, namespace deletion). Stopped with the control plane."""
        if "kube-controller-manager" in self.processes:
            return self.processes["kube-controller-manager"]
        assert self.workdir is not None and self.pki is not None
        binary = find_binary("kube-controller-manager")
        port = 10257 if self.runs_pods else free_port()
        argv = [
            *self.command_prefix,
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--bind-address={self.address}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            f"--controllers={','.join(controllers)}",
            "--leader-elect=false",
            # Each controller with its own service account, as in a real cluster.
            f"--use-service-account-credentials={str(self.runs_pods).lower()}",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            "--profiling=false",
            "--v=1",
        ]
        proc = ManagedProcess(
            "kube-controller-manager", argv, self.workdir / "kube-controller-manager.log"
        )
        self.processes["kube-controller-manager"] = proc
        context = unverified_context()

        def healthy() -> bool:
            status, _ = _probe(self.address, port, "/healthz", context)
            return status == 200

        _wait_until("kube-controller-manager /healthz", healthy, self.start_timeout, [proc])
        return proc

    def stop(self) -> None:
        """Stop every process (controller manager, apiserver, then etcd) and clean up."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop()
        for proc in list(self.processes.values()):
            proc.stop()
        self.processes.clear()
        if self._api_client is not None:
            close: Callable[[], None] = self._api_client.close
            with contextlib.suppress(Exception):
                close()
            self._api_client = None
            self._kube = None
        forget_at_exit(self)
        if self.workdir is not None and self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def check_alive(self) -> None:
        """Raise if a process of the control plane died."""
        for proc in self.processes.values():
            if not proc.running():
                raise ControlPlaneError(
                    f"{proc.name} exited ({proc.proc.returncode}):\n{proc.log_tail()}"
                )

    # -- clients

    def client_configuration(self) -> k8s.Configuration:
        assert self.pki is not None
        # Attributes rather than keyword arguments: older clients take no cert_file argument.
        config = k8s.Configuration(host=self.server)
        config.ssl_ca_cert = str(self.pki.ca_cert)
        config.cert_file = str(self.pki.admin_cert)
        config.key_file = str(self.pki.admin_key)
        return config

    def new_api_client(self) -> k8s.ApiClient:
        """A new admin ApiClient (the caller closes it)."""
        return k8s.ApiClient(self.client_configuration())

    @property
    def api_client(self) -> k8s.ApiClient:
        """The shared admin ApiClient of this control plane."""
        if self._api_client is None:
            self._api_client = self.new_api_client()
        return self._api_client

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.api_client)
        return self._kube

    def install_crds(self, files: Iterable[Path], timeout: float = 60.0) -> list[str]:
        return self.kube.apply_crds(files, timeout=timeout)

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that talks to this control plane."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


@contextlib.contextmanager
def running_control_plane(
    *,
    install_project_crds: bool = True,
    install_argo_crds: bool = True,
    keep_workdir: bool = False,
    extra_apiserver_args: Sequence[str] = (),
) -> Iterator[ControlPlane]:
    """A started control plane with this project's CRDs and Argo's full CRDs installed."""
    with ControlPlane(
        keep_workdir=keep_workdir, extra_apiserver_args=extra_apiserver_args
    ) as plane:
        files: list[Path] = []
        if install_project_crds:
            files += project_crd_files()
        if install_argo_crds:
            files += argo_crd_files()
        plane.install_crds(files)
        yield plane
