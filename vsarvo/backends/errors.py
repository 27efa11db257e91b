"""The errors a backend raises for the user: it cannot run here (BackendError), or its artefact cache
cannot be used (CacheError). Torch-free, so the cache commands can raise them too."""
from __future__ import annotations

import errno
import os

__all__ = ["BackendError", "CacheError", "CACHE_FIX"]

# How a user points the cache elsewhere, said in every CacheError.
CACHE_FIX = "set VSARVO_CACHE=<folder> (or pass cache_dir=<folder>) to a writable folder with free space"


class BackendError(RuntimeError):
    """A backend cannot run here (missing package, device, engine); the message says what to do."""


class CacheError(BackendError, OSError):
    """The artefact cache (exported graphs, engines) cannot be written or read back: an unwritable or
    full folder, or a cached file that stays unloadable after one rebuild. The message names the file
    or folder, the cause and the fix (:data:`CACHE_FIX`). Also an OSError, for callers that catch those.
    """

    @classmethod
    def writing(cls, path: str | os.PathLike[str], exc: OSError) -> "CacheError":
        """The error for an OSError met while creating or writing ``path`` in the cache."""
        cause = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            cause = f"the disk is full ({cause})"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST):
            cause = f"the cache folder cannot be written ({cause})"
        return cls(f"cannot write {os.fspath(path)} in the vsarvo cache: {cause}; {CACHE_FIX}")
