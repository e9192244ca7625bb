"""Argo CD's view of an MLPipeline: the shipped health.lua run as Argo CD runs it."""

from __future__ import annotations

from typing import Any

import lupa.lua51 as lua51

from hack.delivery_files import HEALTH_LUA


def health(obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD does: the object as the global `obj`, the script's returned table."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    # Argo CD's sandbox: no os, io, or loading of code.
    for name in ("os", "io", "dofile", "loadfile", "load", "loadstring", "require"):
        runtime.globals()[name] = None
    runtime.globals()["obj"] = runtime.table_from(obj, recursive=True)
    check = runtime.execute(f"return function()\n{HEALTH_LUA.read_text()}\nend")
    assert callable(check)
    result: Any = check()
    return {key: str(result[key]) for key in ("status", "message") if result[key] is not None}
