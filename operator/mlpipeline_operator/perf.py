"""Keep the cyclic garbage collector out of bulk work on large pipelines."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while building many small acyclic objects.

    Parsing or compiling a 1,000-step pipeline allocates tens of thousands of objects; the
    collector would rescan them again and again (half the time at that size) and free nothing.
    Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
