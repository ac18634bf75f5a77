#!/usr/bin/env bash
# cevent: one entry point for setup, demo, tests and benchmarks.
#
#   ./run.sh demo            build, install into .venv and run `python -m cevent`
#   ./run.sh test [ARGS...]  build, run the C core tests and the pytest suite
#                            (ARGS are passed to pytest)
#   ./run.sh bench [ARGS...] build and run `python -m cevent bench ARGS...`
#
# On a fresh Debian/Ubuntu machine this installs what it needs: liburing-dev
# and valgrind through apt (when running as root or with passwordless sudo),
# and a virtual environment .venv with the package and its test dependencies.
#
# Environment:
#   PYTHON=python3.X   interpreter used to create .venv (default: python3)
#   CEVENT_IO_URING=0  build without the io_uring backend
#   CEVENT_SKIP_APT=1  never call apt-get
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python

say() { printf '==> %s\n' "$*"; }
warn() { printf 'run.sh: warning: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

have_liburing() {
    # Headers plus a linkable library: compile and link a tiny program.
    local cc=${CC:-cc}
    command -v "$cc" >/dev/null 2>&1 || return 1
    # The probe program is shared with setup.py and Tests/c/Makefile.
    "$cc" "$ROOT/Modules/probes/liburing.c" -o /dev/null -luring >/dev/null 2>&1
}

# --- system packages -------------------------------------------------------
ensure_system_packages() {
    local missing=()
    have_liburing || missing+=(liburing-dev)
    command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=(gcc)
    # Debian's own python3 needs these for venvs and for building extensions.
    local python=${PYTHON:-python3}
    if command -v "$python" >/dev/null 2>&1; then
        "$python" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
        "$python" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
            >/dev/null 2>&1 || missing+=(python3-dev)
    fi
    [[ ${#missing[@]} -eq 0 ]] && return 0

    if [[ ${CEVENT_SKIP_APT:-0} == 1 ]] || ! command -v apt-get >/dev/null 2>&1; then
        warn "missing system packages: ${missing[*]} (not installing them)"
        return 0
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            warn "missing system packages: ${missing[*]}; not root and no passwordless sudo"
            return 0
        fi
    fi
    say "installing system packages: ${missing[*]}"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
        || ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
        warn "apt-get failed; continuing without: ${missing[*]}"
    fi
}

# --- virtual environment and build -----------------------------------------
ensure_venv() {
    local python=${PYTHON:-python3}
    if [[ -x $PY ]] && "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        return 0
    fi
    command -v "$python" >/dev/null 2>&1 || die "$python not found (Python >= 3.11 is required)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is $("$python" -c 'import sys; print(sys.version.split()[0])'); Python >= 3.11 is required"
    say "creating $VENV"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
}

# pip_install EXTRA: (re)build the package from this tree and install it into
# .venv, with the dependencies of the given extra.  A real (non-editable)
# install, so the tests import the built extension.  The dependencies are
# installed when pyproject.toml changes; the package itself is rebuilt on
# every call.
pip_install() {
    local extra=$1 log stamp want
    log=$(mktemp "${TMPDIR:-/tmp}/cevent-pip.XXXXXX")
    stamp=$VENV/.cevent-deps-$extra
    want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)

    export CEVENT_WERROR=${CEVENT_WERROR:-1}
    if [[ -z ${CEVENT_IO_URING:-} ]]; then
        if have_liburing; then
            export CEVENT_IO_URING=1
        else
            warn "liburing-dev is not installed: the io_uring backend will be OFF"
        fi
    fi

    local pip=("$PY" -m pip install -v --disable-pip-version-check)
    say "building cevent (CEVENT_WERROR=$CEVENT_WERROR CEVENT_IO_URING=${CEVENT_IO_URING:-auto}${CEVENT_DEBUG:+ CEVENT_DEBUG=$CEVENT_DEBUG}${CEVENT_SANITIZE:+ CEVENT_SANITIZE=$CEVENT_SANITIZE})"
    rm -rf "$ROOT/build"
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        if ! "${pip[@]}" ".[$extra]" >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            die "pip install .[$extra] failed"
        fi
        echo "$want" >"$stamp"
    elif ! "${pip[@]}" --force-reinstall --no-deps . >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "pip install . failed"
    fi
    # setup.py prints one line telling whether io_uring is built in.
    grep -o 'cevent: io_uring backend.*' "$log" | head -n 1 || true
    rm -f "$log"
    rm -rf "$ROOT/build"
}

setup() {
    ensure_system_packages
    ensure_venv
    pip_install "$1"
}

# --- commands --------------------------------------------------------------
cmd_demo() {
    setup test
    exec "$PY" -m cevent "$@"
}

cmd_test() {
    # The private fault-injection hook (Tests/test_faults.py); never in a
    # release build.
    export CEVENT_FAULT_INJECTION=${CEVENT_FAULT_INJECTION:-1}
    setup test
    say "backends"
    "$PY" -c 'import cevent; print("backends:", cevent.backends()); print("unavailable:", cevent.unavailable_backends())'

    say "C core tests (make -C Tests/c check)"
    make -C Tests/c check

    say "pytest"
    local rc=0
    "$PY" -m pytest -n auto Tests "$@" || rc=$?
    if [[ $rc -eq 5 ]]; then
        die "pytest collected no tests"
    elif [[ $rc -ne 0 ]]; then
        die "pytest failed (exit $rc)"
    fi
}

cmd_bench() {
    setup bench
    exec "$PY" -m cevent bench "$@"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        demo) cmd_demo "$@" ;;
        test) cmd_test "$@" ;;
        bench) cmd_bench "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
