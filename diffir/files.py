"""Writing files so that nothing is ever half-written: one atomic writer for every output."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

UMASK = os.umask(0o022)
os.umask(UMASK)  # read once, at import: os.umask is process-wide and not thread-safe
PART_SUFFIX = ".part"


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write to a hidden temporary name in the same folder, then rename.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
