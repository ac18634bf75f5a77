"""The C parts of the server benchmark (``c/loadgen.c``, ``c/httpload.c``,
``c/echo_epoll.c``, with ``c/common.h``), compiled on demand with the system's C compiler into a cache directory
(``$XDG_CACHE_HOME/cevent-bench``, else ``~/.cache/cevent-bench``), keyed
by a hash of the source and the headers so that an edited file is
rebuilt."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
CFLAGS = ["-O2", "-Wall", "-Wextra"]


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cevent-bench")


def build(name: str) -> str:
    """Path of the program built from ``c/<name>.c``; compiles it first if
    the cache has no build of this source.  Raises RuntimeError with the
    compiler's output when it cannot be built."""
    src = os.path.join(SOURCE_DIR, name + ".c")
    digest = hashlib.sha256(" ".join(CFLAGS).encode())
    # the program and the headers it may include (c/*.h)
    for path in [src] + sorted(
            os.path.join(SOURCE_DIR, h) for h in os.listdir(SOURCE_DIR)
            if h.endswith(".h")):
        with open(path, "rb") as f:
            digest.update(f.read())
    out = os.path.join(cache_dir(), f"{name}-{digest.hexdigest()[:16]}")
    if os.access(out, os.X_OK):
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError(f"no C compiler (cc) to build {src}")
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir(), prefix=name + ".")
    os.close(fd)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, src],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building {src} failed:\n{proc.stderr}")
        os.replace(tmp, out)    # atomic: a concurrent build is harmless
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
