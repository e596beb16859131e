"""Output folders: made before any work, refused in one line when they cannot be written."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import click


def writable_folder(out: str | os.PathLike) -> Path:
    """Create `out` (with parents) and check it can be written; OSError (EROFS or EACCES) if not."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        if hasattr(os, "statvfs") and os.statvfs(path).f_flag & os.ST_RDONLY:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    return path


def unwritable(out: str | os.PathLike, error: OSError) -> str:
    """The one line that refuses `--out`."""
    return f"--out {out}: cannot create or write the folder ({error.strerror or error}); give a folder that can be written"


def make_out(out: str | os.PathLike) -> Path:
    """`writable_folder` for click commands: one line and exit 2 (a usage error) when it fails."""
    try:
        return writable_folder(out)
    except OSError as e:
        error = click.ClickException(unwritable(out, e))
        error.exit_code = 2
        raise error from None
