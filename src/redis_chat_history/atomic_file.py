"""Files of export and import: a file is replaced only once it is complete.

An export to a path writes a temporary file beside it (``.<name>.<run>.tmp``), flushed
and fsynced, then renamed over the path, so an existing file stays as it was until a
complete export replaces it (and keeps its mode); an interrupted or failed export
leaves no file behind. Errors name the path the caller gave, never the temporary file.

Example::

    with atomic_file("backup.jsonl") as write:
        write(b"...")
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from redis_chat_history.slots import new_run_id


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Callable[[bytes], Any]]:
    """Write to a temporary file beside ``path``, renamed over it only once complete."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{new_run_id()[:8]}.tmp")
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:  # name the path the caller gave, not the temporary file
        raise type(error)(error.errno, error.strerror, os.fspath(path)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle.write
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):  # an existing file keeps its mode
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


@contextlib.contextmanager
def open_output(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Callable[[bytes], Any]]:
    """A ``write(bytes)`` to a path (atomically), a binary stream or a text stream."""
    if isinstance(file, (str, os.PathLike)):
        with atomic_file(file) as write:
            yield write
    elif isinstance(file, io.TextIOBase):
        yield lambda line: file.write(line.decode("utf-8", "surrogateescape"))
    else:
        yield file.write


@contextlib.contextmanager
def open_input(file: str | os.PathLike[str] | IO[Any]) -> Iterator[Iterable[bytes | str]]:
    """The lines of a path (read as bytes) or of an open stream."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            yield handle
    else:
        yield file
