"""What a step leaves behind, read as Argo's wait container reads it: every problem is a message.

An output parameter is a regular file of UTF-8 text without NUL bytes, at most 256 KiB (in the
cluster its value ends up in the Workflow's status: large data belongs in an artifact). An output
artifact is a file or a directory of files and directories; symbolic links are followed, as the
copy to the steps that read the artifact follows them, so a link must lead to a file or a
directory that is not one of its own parents. Named pipes, sockets and devices are refused: a
read from a pipe would wait for ever.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlpipeline_operator.messages import quoted

MAX_PARAMETER_BYTES = 256 * 1024


class OutputError(ValueError):
    """What is wrong with an output, from its path on: "/out/x is a directory, not a file"."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _missing(path: Path, shown: str) -> OutputError:
    """A path that stat() cannot find: never written, or a link to nowhere."""
    if path.is_symlink():
        return OutputError(
            f"{shown} is a symbolic link to {quoted(str(path.readlink()))}, which does not exist"
        )
    return OutputError(f"{shown} was not written")


def _unreadable(shown: str, error: OSError) -> OutputError:
    return OutputError(f"{shown} cannot be read: {error.strerror or error}")


def read_parameter(path: Path, shown: str) -> str:
    """The value of an output parameter file (`shown`: its path in the step's container).

    Argo trims one trailing newline for convenience.
    """
    try:
        # Non-blocking, so that opening a named pipe does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _missing(path, shown) from None
    except OSError as error:
        raise _unreadable(shown, error) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OutputError(f"{shown} is {_kind(mode)}, not a file")
        data = os.read(fd, MAX_PARAMETER_BYTES + 1)
    except OSError as error:
        raise _unreadable(shown, error) from None
    finally:
        os.close(fd)
    if len(data) > MAX_PARAMETER_BYTES:
        raise OutputError(
            f"{shown} holds more than {MAX_PARAMETER_BYTES // 1024} KiB; "
            "pass large data as an artifact"
        )
    nul = data.find(b"\0")
    if nul >= 0:
        raise OutputError(f"{shown} holds a NUL byte (at byte {nul}); an output parameter is text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OutputError(
            f"{shown} is not UTF-8 text (byte 0x{data[error.start]:02x} at {error.start})"
        ) from None
    return text[:-1] if text.endswith("\n") else text


def check_artifact(path: Path, shown: str) -> None:
    """Raise OutputError unless an output artifact can be copied to the steps that read it."""

    def shown_of(entry: Path) -> str:
        return shown if entry == path else f"{shown}/{entry.relative_to(path)}"

    _check_entry(path, shown, path)
    if not path.is_dir():
        return
    try:
        for directory, dirs, files in os.walk(path, followlinks=True, onerror=_raise):
            for name in sorted([*dirs, *files]):
                entry = Path(directory) / name
                _check_entry(entry, shown_of(entry), path)
    except OSError as error:
        where = Path(error.filename) if error.filename else path
        raise _unreadable(shown_of(where), error) from None


def _raise(error: OSError) -> None:
    raise error


def _check_entry(entry: Path, shown: str, root: Path) -> None:
    try:
        mode = entry.stat().st_mode
    except FileNotFoundError:
        raise _missing(entry, shown) from None
    except OSError as error:
        raise _unreadable(shown, error) from None
    if stat.S_ISDIR(mode):
        if entry.is_symlink() and entry.resolve() in _walked(entry, root):
            target = quoted(str(entry.readlink()))
            raise OutputError(
                f"{shown} is a symbolic link to {target}, a directory that contains it (a loop)"
            )
    elif not stat.S_ISREG(mode):
        raise OutputError(f"{shown} is {_kind(mode)}, not a file or a directory")


def _walked(entry: Path, root: Path) -> set[Path]:
    """The real directories that a walk from `root` went through to reach `entry`."""
    parents = entry.relative_to(root).parents
    return {(root / parent).resolve() for parent in parents}
