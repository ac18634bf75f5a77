"""Build helpers for the C API benchmarks: the consumer extension of
Tests/capi/testcapi.c (the same source the tests build) and the plain C
reference programs under Benchmarks/.  Everything goes into a temporary
directory; nothing is installed."""

import importlib.util
import os
import shlex
import subprocess
import sysconfig

import cevent

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
TESTCAPI_SOURCE = os.path.join(TOP, "Tests", "capi", "testcapi.c")

CFLAGS = ["-O2", "-g", "-Wall", "-Wextra", "-Werror"]


def _cc():
    return shlex.split(os.environ.get("CC") or "cc")


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"build failed: {shlex.join(cmd)}\n"
                           f"{proc.stdout}{proc.stderr}")


def build_testcapi(out_dir):
    """Compile and import the consumer extension ``_cevent_testcapi``."""
    paths = sysconfig.get_paths()
    includes = {paths["include"], paths["platinclude"], cevent.get_include()}
    name = "_cevent_testcapi"
    out = os.path.join(out_dir, name + sysconfig.get_config_var("EXT_SUFFIX"))
    _run(_cc() + ["-shared", "-fPIC"] + CFLAGS
         + [f"-I{d}" for d in sorted(includes)] + [TESTCAPI_SOURCE, "-o", out])
    spec = importlib.util.spec_from_file_location(name, out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_program(source_name, out_dir):
    """Compile Benchmarks/<source_name> into an executable; returns its
    path."""
    src = os.path.join(HERE, source_name)
    out = os.path.join(out_dir, os.path.splitext(source_name)[0])
    _run(_cc() + CFLAGS + [src, "-o", out])
    return out
