"""What the terminal shows: one line per change of a step's state, then a summary."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mlpipeline_operator.local.results import PromotionResult, StepPhase, StepResult

# The end of a failed step's log shown in the summary: at most so many lines, found among at most
# so many bytes at the end of the file, each cut at so many characters.
LOG_TAIL_LINES = 15
LOG_TAIL_BYTES = 64 * 1024
LOG_LINE_WIDTH = 300


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m{secs:02d}s"


def shown_path(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to read and copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class Reporter:
    """Prints progress lines, each prefixed with the time since the run started."""

    def __init__(self, names: Sequence[str], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.names = list(names)
        self.width = max((len(n) for n in names), default=4)
        self.started = time.monotonic()

    def restart_clock(self) -> None:
        self.started = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def header(self, text: str) -> None:
        self._print(text)

    def note(self, text: str) -> None:
        self._print(f"  note: {text}")

    def step(self, result: StepResult, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started
        attempt = f"attempt {result.attempts}/{result.max_attempts}" if result.attempts else ""
        parts = [
            f"[{format_seconds(elapsed):>7}]",
            result.name.ljust(self.width),
            str(result.phase).ljust(11),
            attempt.ljust(12),
        ]
        if result.phase not in (StepPhase.RUNNING, StepPhase.PENDING, StepPhase.SKIPPED):
            parts.append(format_seconds(result.duration).rjust(7))
        if detail:
            parts.append(detail)
        self._print(" ".join(parts).rstrip())

    def summary(
        self,
        results: Sequence[StepResult],
        promotion: PromotionResult | None,
        run_dir: Path,
        interrupted: str | None,
    ) -> None:
        out = self._print
        out("")
        out(f"{'STEP'.ljust(self.width)}  {'STATE':<11}  {'ATTEMPTS':<8}  {'DURATION':>8}  NOTE")
        # A step with forEach: its row, then one indented row per iteration, noting its item.
        rows = [
            row
            for r in results
            for row in [
                (r, r.name, r.message),
                *((i, f"  {i.name}", f"item {i.item} {i.message}") for i in r.iterations),
            ]
        ]
        for r, name, note in rows:
            attempts = f"{r.attempts}/{r.max_attempts}" if r.attempts else "-"
            out(
                f"{name.ljust(self.width)}  {r.phase!s:<11}  {attempts:<8}  "
                f"{format_seconds(r.duration):>8}  {note}".rstrip()
            )
        out("")
        if promotion is not None:
            version = f" version {promotion.version}" if promotion.version else ""
            reason = f": {promotion.reason}" if promotion.reason else ""
            out(f"promotion: {promotion.decision or '(no decision)'}{version}{reason}")
            if promotion.holder is None:
                out(f'alias "{promotion.alias}": held by no version of {promotion.model}')
            else:
                out(
                    f'alias "{promotion.alias}": {promotion.model} version {promotion.holder}'
                    f"{' (this run)' if promotion.holder == promotion.version else ''}"
                )
        failed = [r for r in results if r.fails_run]
        elapsed = format_seconds(time.monotonic() - self.started)
        for r in results:
            if r.phase.failed and not r.fails_run:
                out(f"step {r.name} {r.phase} (continueOnFailure: the run went on)")
        if interrupted is not None:
            out(f"run interrupted by {interrupted} after {elapsed}; files in {shown_path(run_dir)}")
        elif failed:
            first = failed[0]
            out(f"run failed after {elapsed}: step {first.name} {first.phase}: {first.message}")
            if first.attempts == 0:  # a skipped last step (failed_branch): no log
                return
            out(f"log of {first.name}: {shown_path(first.log)}")
            last = tail(first.log)
            if last:
                out(f"last lines of {first.name}'s log:")
                for line in last:
                    out(f"  | {line}")
        else:
            out(f"run succeeded in {elapsed}; files in {shown_path(run_dir)}")


def tail(
    path: Path,
    lines: int = LOG_TAIL_LINES,
    max_bytes: int = LOG_TAIL_BYTES,
    width: int = LOG_LINE_WIDTH,
) -> list[str]:
    """The last `lines` complete lines among the last `max_bytes` bytes of a log (a log can be
    larger than memory), each cut at `width` characters; none if the log cannot be read."""
    try:
        # Non-blocking and checked: a step could leave something else than a file there.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        size = os.lseek(fd, 0, os.SEEK_END)
        # One byte more, to know whether the first line read is whole.
        start = max(0, size - max_bytes - 1)
        data = os.pread(fd, size - start, start)
    except OSError:
        return []
    finally:
        os.close(fd)
    if start > 0:
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    found = data.decode("utf-8", errors="replace").splitlines()[-lines:]
    return [
        line if len(line) <= width else f"{line[:width]}... ({len(line) - width} more characters)"
        for line in found
    ]
