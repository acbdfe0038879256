"""Atomic file writes: a kill at any moment leaves the old file or the new one, never part of one.

A file is written to a temporary sibling ``.tmp-<stem>-<random><suffix>`` in the same folder,
flushed and fsynced, renamed over the target with :func:`os.replace` and the rename fsynced through
the folder. A writer killed before the rename leaves only its temporary file behind, which
:func:`remove_temporaries` deletes the next time the (single) writer of that folder runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_PREFIX = ".tmp-"
"""The name prefix of every temporary file an atomic write creates."""


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace ``path`` atomically with what ``write(file)`` writes to a binary file.

    On an exception (including ``KeyboardInterrupt``) the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Create or replace the text file ``path`` (UTF-8) atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda file: file.write(data))


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in ``directory`` durable, where the OS lets a folder be opened and fsynced."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames need no folder fsync
        return
    try:
        os.fsync(handle)
    except OSError:  # some file systems refuse to fsync a folder
        pass
    finally:
        os.close(handle)


def remove_temporaries(directory: str | Path, target: str | None = None) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory``; returns what was removed.

    ``target`` (a file name such as ``config.yaml``) limits the clean-up to that file's temporaries;
    ``None`` removes every one. Call it only from the one process that writes ``directory``: another
    writer's temporary file is in use until its rename.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = f"{TEMPORARY_PREFIX}*"
    if target is not None:
        pattern = f"{TEMPORARY_PREFIX}{Path(target).stem}-*{Path(target).suffix}"
    removed = [path for path in directory.glob(pattern) if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
