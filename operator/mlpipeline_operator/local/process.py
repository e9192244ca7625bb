"""One attempt of a step: a process in its own process group, killed whole at its deadline.

Each attempt runs in a new session (`start_new_session`), so the step's process and everything
it starts share one process group that the runner can signal at once: at the timeout, when the
run is interrupted, and after the step's main process ends (as a pod's other processes end with
its container), so no process of a step outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# How long a step may take to exit after SIGTERM before SIGKILL (Kubernetes gives 30 s).
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Exit:
    """How the process ended: its exit code, or that it was killed at its deadline."""

    returncode: int | None
    timed_out: bool = False
    start_error: str | None = None


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send a signal to a process group; a group that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stop(
    process: asyncio.subprocess.Process,
    grace: float = KILL_GRACE_SECONDS,
    kill: asyncio.Event | None = None,
) -> str:
    """SIGTERM to the process group; SIGKILL after `grace` seconds, or as soon as `kill` is set
    (a second Ctrl-C), or at once if the caller is cancelled meanwhile. Says which it was."""
    signal_group(process.pid, signal.SIGTERM)
    waits = [asyncio.ensure_future(process.wait())]
    if kill is not None:
        waits.append(asyncio.ensure_future(kill.wait()))
    try:
        await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        ended = process.returncode is not None
        signal_group(process.pid, signal.SIGKILL)
    await process.wait()
    if ended:
        return "ended on SIGTERM"
    if kill is not None and kill.is_set():
        return "killed at once (SIGKILL)"
    return f"killed (SIGKILL) after {grace:g}s"


async def run_attempt(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float | None,
    kill: asyncio.Event | None = None,
    on_stopped: Callable[[str], None] | None = None,
) -> Exit:
    """Run `argv` with stdout and stderr appended to `log`; kill its group after `timeout` s.

    When cancelled (the run is interrupted), the group is stopped as `stop` does, `kill` cutting
    the grace period short, and `on_stopped` is told how it ended.
    """
    try:
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as error:
        where = error.filename or argv[0]
        return Exit(None, start_error=f"{where}: {error.strerror or error}")
    except ValueError:  # no process can be given a NUL byte
        return Exit(None, start_error="an argument or environment variable holds a NUL byte")
    try:
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        returncode = await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        await stop(process, kill=kill)
        return Exit(process.returncode, timed_out=True)
    except asyncio.CancelledError:
        how = await stop(process, kill=kill)
        if on_stopped is not None:
            on_stopped(how)
        raise
    # The main process is done: whatever it left running in its group goes with it.
    signal_group(process.pid, signal.SIGKILL)
    return Exit(returncode)
