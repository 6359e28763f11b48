"""Files and folders only their owner can read: where keys and the receiver's store live.

``private_file`` creates a file 0600 (``O_EXCL``: never a moment with wider permissions) or
tightens an existing one; ``private_dir`` does the same for a folder, 0700. Either only tightens
what the current user owns.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat

FILE_MODE = 0o600
DIR_MODE = 0o700
_OTHERS = 0o077  # group and world bits


def private_dir(path: pathlib.Path) -> None:
    """Make ``path`` a folder only its owner can enter (0700): created so, or tightened."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)


def private_file(path: pathlib.Path) -> None:
    """Create ``path`` empty and 0600 if it is missing; tighten it to 0600 if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
        return
    os.close(fd)


def create_private(path: pathlib.Path) -> int:
    """A new file at ``path`` (none may exist), 0600 from its creation: its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)


def replace_private(path: pathlib.Path, text: str) -> None:
    """``path`` holds ``text``, whole: written to a temporary file created 0600 beside it,
    flushed to disk, then renamed over it (a reader, or a crash, never sees half of it)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # a leftover of a crash: O_EXCL below must create the file afresh
    fd = create_private(temp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as output:
            output.write(text)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def _tighten(path: pathlib.Path, mode: int) -> None:
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & _OTHERS and info.st_uid == os.getuid():
        path.chmod(mode)
