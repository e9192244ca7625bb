"""Keep the cyclic garbage collector out of bulk work: large pipelines, and loading modules."""

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


@contextmanager
def long_lived() -> Iterator[None]:
    """Create objects that live as long as the process, such as the modules a command imports.

    Importing pydantic, mlflow or kopf creates hundreds of thousands of objects; the collector
    would scan them again and again while they load, then at every full collection and at exit,
    and find next to nothing to free (a fifth of `mlpipeline promote`'s time). It is paused
    meanwhile, and `gc.freeze` then leaves everything that exists out of its later passes: a
    cycle among those objects is never collected, so only what lives as long as the process
    belongs in this block.
    """
    with gc_paused():
        yield
    gc.freeze()
