"""A fault-injecting proxy between a client (the operator) and the test kube-apiserver.

It listens on 127.0.0.1 with TLS, serving the control plane's own serving certificate (issued by
the test CA for 127.0.0.1), so a client keeps its usual kubeconfig: the test CA, a client
certificate, and the proxy's address as the server. It does not check the client's certificate;
it talks to the API server as the control plane's admin. Requests go through unchanged and watch
responses are streamed line by line, unless a rule injects a fault:

- `Reply(status, retry_after)`: an API `Status` answer (409 Conflict, 410 Gone, 429 with
  `Retry-After`, 500, 503) instead of forwarding;
- `Reset()`: the connection is reset (SO_LINGER 0, then closed) before any answer;
  `Reset(graceful=True)`: closed before any answer;
- `Stall()`: a watch is answered 200 and then sends nothing, until the client gives up;
- `GoneEvent(after)`: a watch is forwarded, and after `after` events the stream gets
  `{"type": "ERROR", "object": {"kind": "Status", "code": 410, ...}}` and ends, as the API
  server does when the watched resourceVersion is too old.

A rule matches the request's verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
`delete`) and resource (`mlpipelines/status`, `workflows`...), fires with a probability (from a
seeded generator) and at most `limit` times. The proxy counts every request it receives, by
verb and resource, and every fault it injects, by rule.

Plain Python on aiohttp (a dependency of kopf), in a thread of its own, so a synchronous test
drives it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.controlplane.harness import ControlPlane, free_port, write_kubeconfig

# Headers of one hop, not of the message: aiohttp sets its own.
_HOP_HEADERS = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Host", "Upgrade")
)
_REASONS = {
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True)
class Reply:
    """Answer with an API `Status` of this code (and `Retry-After` seconds, if given)."""

    status: int
    retry_after: int | None = None


@dataclass(frozen=True)
class Reset:
    """Reset the connection before answering (`graceful`: close it, as a server going away
    does; the client reads an end of stream instead of a reset)."""

    graceful: bool = False


@dataclass(frozen=True)
class Stall:
    """Answer a watch with 200 and then nothing, until the client closes the connection."""


@dataclass(frozen=True)
class GoneEvent:
    """Forward a watch, then end it after `after` events with an ERROR event of code 410."""

    after: int = 0


Fault = Reply | Reset | Stall | GoneEvent


@dataclass
class Rule:
    """Inject `fault` into requests of one of `verbs` on a resource matching `resource` (a
    regular expression matched whole), with `probability`, at most `limit` times."""

    name: str
    fault: Fault
    verbs: frozenset[str]
    resource: str = ".*"
    probability: float = 1.0
    limit: int | None = None
    fired: int = field(default=0, init=False)

    def matches(self, verb: str, resource: str) -> bool:
        return verb in self.verbs and re.fullmatch(self.resource, resource) is not None


def classify(method: str, path: str, watch: bool) -> tuple[str, str]:
    """(verb, resource) of an API request, as the API server's audit log names them; the
    resource is the plural, with `/subresource` if any (`mlpipelines/status`)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return method.lower(), path  # /version, /healthz...
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return method.lower(), path  # discovery
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {
        "GET": "watch" if watch else ("get" if named else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }.get(method, method.lower())
    return verb, resource


def status_body(code: int, message: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return body


class FaultProxy:
    """The proxy in a thread of its own: `start()`, `kubeconfig(path)`, `stop()`."""

    def __init__(self, plane: ControlPlane, rules: Sequence[Rule] = (), seed: int = 0) -> None:
        assert plane.pki is not None
        self.plane = plane
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._rules = list(rules)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._faults: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- life cycle

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def kubeconfig(self, path: Any) -> Any:
        """A kubeconfig for the admin identity with the proxy as its server."""
        pki = self.plane.pki
        assert pki is not None
        return write_kubeconfig(path, self.url, pki.ca_cert, pki.admin_cert, pki.admin_key)

    # -- what happened

    def set_rules(self, rules: Sequence[Rule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def requests(self) -> Counter[tuple[str, str]]:
        """Requests received so far, by (verb, resource)."""
        with self._lock:
            return Counter(self._requests)

    def faults(self) -> Counter[str]:
        """Faults injected so far, by rule name."""
        with self._lock:
            return Counter(self._faults)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # -- the server

    async def _start(self) -> None:
        pki = self.plane.pki
        assert pki is not None
        upstream = ssl.create_default_context(cafile=str(pki.ca_cert))
        upstream.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(str(pki.serving_cert), str(pki.serving_key))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Cancel a handler whose client went away: a stalled watch then ends with its client.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=2
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=serving).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _choose(self, verb: str, resource: str) -> Rule | None:
        with self._lock:
            self._requests[verb, resource] += 1
            for rule in self._rules:
                if not rule.matches(verb, resource):
                    continue
                if rule.limit is not None and rule.fired >= rule.limit:
                    continue
                if self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                self._faults[rule.name] += 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        verb, resource = classify(request.method, request.path, watch)
        rule = self._choose(verb, resource)
        fault = rule.fault if rule else None
        if isinstance(fault, Reply):
            message = f"injected by the fault proxy: {rule.name if rule else ''}"
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            return web.json_response(
                status_body(fault.status, message, fault.retry_after),
                status=fault.status,
                headers=headers,
            )
        if isinstance(fault, Reset):
            _reset(request, fault.graceful)
            raise asyncio.CancelledError  # nothing more to say on a closed connection
        if isinstance(fault, Stall):
            stalled = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await stalled.prepare(request)
            await asyncio.Event().wait()  # cancelled when the client closes the connection
        return await self._forward(request, watch, fault if isinstance(fault, GoneEvent) else None)

    async def _forward(
        self, request: web.Request, watch: bool, gone: GoneEvent | None
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        async with self._session.request(
            request.method,
            f"{self.plane.server}{request.rel_url}",
            headers=headers,
            data=body or None,
        ) as upstream:
            reply_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
            }
            if not watch or upstream.status != 200:
                return web.Response(
                    status=upstream.status, headers=reply_headers, body=await upstream.read()
                )
            reply = web.StreamResponse(status=200, headers=reply_headers)
            await reply.prepare(request)
            limit = gone.after if gone is not None else None
            events = 0
            buffer = b""
            while limit is None or events < limit:
                chunk = await upstream.content.readany()
                if not chunk:
                    break  # the API server ended the watch
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines[: None if limit is None else limit - events]:
                    await reply.write(line + b"\n")
                    events += 1
            if gone is not None:
                error = {
                    "type": "ERROR",
                    "object": status_body(410, "too old resource version: injected"),
                }
                await reply.write(json.dumps(error).encode() + b"\n")
            await reply.write_eof()
            return reply


def _reset(request: web.Request, graceful: bool) -> None:
    """Close the client's connection: with a TCP reset (RST), or a graceful close."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None and not graceful:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
