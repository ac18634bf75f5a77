"""Build script for the cevent C extension.

All package metadata lives in pyproject.toml; this file only describes the
extension module and the environment-driven build switches:

  CEVENT_WERROR=1        add -Werror
  CEVENT_DEBUG=1         -O0 -g3, assertions on, CEVENT_DEBUG and
                         CEVENT_FAULT_INJECTION defined
  CEVENT_FAULT_INJECTION=1
                         define CEVENT_FAULT_INJECTION only: the private
                         test hook cevent._cevent._fault_inject() (used by
                         Tests/test_faults.py); never set for releases
  CEVENT_SANITIZE=LIST   -fsanitize=LIST (e.g. "address,undefined" or
                         "thread") on compile and link
  CEVENT_IO_URING=0|1    0: build without io_uring; 1: require liburing and
                         fail if it is missing; unset: use it if usable
"""

import glob
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def _env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return False
    if value in ("1", "yes", "true", "on"):
        return True
    sys.exit(f"cevent: {name} must be 0 or 1, not {os.environ[name]!r}")


def _io_uring_mode():
    value = os.environ.get("CEVENT_IO_URING", "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("0", "no", "false", "off"):
        return "off"
    if value in ("1", "yes", "true", "on"):
        return "on"
    sys.exit(f"cevent: CEVENT_IO_URING must be 0, 1 or unset, not {value!r}")


WERROR = _env_flag("CEVENT_WERROR")
DEBUG = _env_flag("CEVENT_DEBUG")
FAULT_INJECTION = _env_flag("CEVENT_FAULT_INJECTION") or DEBUG
SANITIZE = os.environ.get("CEVENT_SANITIZE", "").strip()
IO_URING = _io_uring_mode()

# Relative paths: setuptools requires them for sdists and wheels.
# The three floors (docs/development.md): the port and the binding make
# cevent._cevent; the asyncio face's C part is cevent._loopcore, another
# extension that uses cevent._cevent only through its C API (cevent.h).
SOURCES = (sorted(glob.glob("Modules/*.c")) +
           sorted(glob.glob("Modules/_cevent/*.c")))
FACE_SOURCES = sorted(glob.glob("Modules/_loopcore/*.c"))

define_macros = [
    ("_GNU_SOURCE", None),
    ("CONFIG_LINUX", None),
    ("CONFIG_PPOLL", None),
    ("CONFIG_EPOLL_CREATE1", None),
]
extra_compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"]
extra_link_args = []

if WERROR:
    extra_compile_args.append("-Werror")
if DEBUG:
    extra_compile_args += ["-O0", "-g3", "-UNDEBUG"]
    define_macros += [("CEVENT_DEBUG", "1")]
if FAULT_INJECTION:
    define_macros += [("CEVENT_FAULT_INJECTION", "1")]
if SANITIZE:
    san = [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=all"]
    extra_compile_args += san
    extra_link_args += san

# The probe program, shared with run.sh and Tests/c/Makefile.
LIBURING_PROBE = os.path.join("Modules", "probes", "liburing.c")


def _have_liburing(compiler):
    """Compile and link a tiny program against liburing."""
    tmp = tempfile.mkdtemp(prefix="cevent-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        shutil.copyfile(os.path.join(ROOT, LIBURING_PROBE), src)
        devnull = open(os.devnull, "w")
        saved = os.dup(2), os.dup(1)
        try:
            # Keep the expected failure of the probe out of the build log.
            os.dup2(devnull.fileno(), 2)
            os.dup2(devnull.fileno(), 1)
            objs = compiler.compile([src], output_dir=tmp)
            compiler.link_executable(objs, "probe", output_dir=tmp,
                                     libraries=["uring"])
        finally:
            os.dup2(saved[0], 2)
            os.dup2(saved[1], 1)
            os.close(saved[0])
            os.close(saved[1])
            devnull.close()
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        if IO_URING == "off":
            use_uring, why = False, "disabled by CEVENT_IO_URING=0"
        elif _have_liburing(self.compiler):
            use_uring, why = True, "liburing found"
        elif IO_URING == "on":
            sys.exit(
                "cevent: CEVENT_IO_URING=1 but liburing is not usable "
                "(could not compile and link a program with <liburing.h> and "
                "-luring). Install it (Debian/Ubuntu: apt-get install "
                "liburing-dev) or build with CEVENT_IO_URING=0."
            )
        else:
            use_uring, why = False, "liburing not found"
        for ext in self.extensions:
            if use_uring:
                ext.define_macros.append(("CONFIG_LINUX_IO_URING", None))
                # The face uses liburing's inline sqe helpers only.
                if ext.name == "cevent._cevent":
                    ext.libraries.append("uring")
        print(f"cevent: io_uring backend {'built in' if use_uring else 'NOT built in'} ({why})",
              flush=True)
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "cevent._cevent",
            sources=SOURCES,
            include_dirs=["Modules/include", "Modules", "Lib/cevent/include"],
            define_macros=list(define_macros),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        ),
        Extension(
            "cevent._loopcore",
            sources=FACE_SOURCES,
            # cevent.h and CPython's headers only: not the port's.
            include_dirs=["Lib/cevent/include"],
            define_macros=[("_GNU_SOURCE", None)],
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        ),
    ],
    cmdclass={"build_ext": BuildExt},
)
