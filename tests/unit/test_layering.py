"""The package's layers, checked: which part may import which, and where the heavy or
framework dependencies may appear. Data flows one way: API models -> core -> validation ->
compiler -> reconcile (and the local runner, promotion, the CLI on top); pure code does not
import kopf."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mlpipeline_operator

PACKAGE = Path(mlpipeline_operator.__file__).parent

# Each part of the package (a top-level module or subpackage) and the parts it may import.
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "perf": set(),
    "messages": set(),
    "yamlio": {"messages"},
    "cli_types": {"messages"},
    "api": {"__init__", "messages", "yamlio"},
    "core": {"api", "placeholders"},
    "placeholders": set(),
    "sources": {"api", "messages", "placeholders"},
    "caching": {"api", "core", "placeholders", "sources"},
    "lineage": {"api"},
    "conditions": {"placeholders"},
    "validation": {
        "api",
        "caching",
        "conditions",
        "core",
        "lineage",
        "messages",
        "perf",
        "placeholders",
        "sources",
    },
    "loading": {"api", "validation", "yamlio"},
    "policy": {"api", "core", "messages", "validation", "yamlio"},
    "admission": {"core", "policy", "validation"},
    "promotion": {"api", "cli_types", "lineage", "messages", "validation"},
    "compiler": {
        "api",
        "caching",
        "conditions",
        "core",
        "lineage",
        "perf",
        "placeholders",
        "promotion",
        "sources",
        "validation",
    },
    "reconcile": {
        "admission",
        "api",
        "caching",
        "cli_types",
        "compiler",
        "core",
        "policy",
        "promotion",
        "validation",
    },
    "local": {
        "api",
        "caching",
        "cli_types",
        "compiler",
        "conditions",
        "core",
        "lineage",
        "loading",
        "messages",
        "placeholders",
        "promotion",
        "sources",
        "validation",
    },
}
# Third-party packages allowed only in these modules (relative to the package).
CONFINED: dict[str, set[str]] = {
    "kopf": {"reconcile/handlers.py"},
    "kubernetes_asyncio": {"reconcile/kube.py", "reconcile/peering.py"},
    # The operator's metrics and their endpoint (aiohttp, as kopf's liveness endpoint); the API
    # calls, for the connection errors of kubernetes_asyncio's transport (aiohttp's own).
    "prometheus_client": {"reconcile/metrics.py"},
    "aiohttp": {"reconcile/metrics.py", "reconcile/kube.py", "reconcile/webhook.py"},
    # The admission webhook's own CA and serving certificate.
    "cryptography": {"reconcile/certificates.py"},
    # The compiler writes plain dicts; the unit tests read them back through hera's models.
    "hera": set(),
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, at any depth (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mlpipeline_operator":  # a submodule, or a name of __init__
                for alias in node.names:
                    submodule = (PACKAGE / alias.name).is_dir() or (
                        PACKAGE / f"{alias.name}.py"
                    ).is_file()
                    yield f"mlpipeline_operator.{alias.name}" if submodule else node.module
            else:
                yield node.module


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        yield relative.parts[0].removesuffix(".py"), path


def test_every_part_imports_only_the_layers_below_it() -> None:
    wrong = []
    for part, path in _modules():
        assert part in ALLOWED or part == "cli", f"{part}: no layer"
        if part not in ALLOWED:
            continue  # the command line sits on top of everything
        for module in _imports(path):
            if module.startswith("mlpipeline_operator"):
                target = _part(module)
                if target != part and target not in ALLOWED[part]:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_frameworks_stay_in_their_modules() -> None:
    wrong = []
    for _, path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        for module in _imports(path):
            top = module.split(".")[0]
            if top in CONFINED and relative not in CONFINED[top]:
                wrong.append(f"{relative} imports {module}")
    assert wrong == []


def test_the_layers_form_no_cycle() -> None:
    done: set[str] = set()

    def visit(part: str, path: tuple[str, ...]) -> None:
        assert part not in path, " -> ".join((*path, part))
        if part not in done:
            for below in ALLOWED.get(part, set()):
                visit(below, (*path, part))
            done.add(part)

    for part in ALLOWED:
        visit(part, ())
