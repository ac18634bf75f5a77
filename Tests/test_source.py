"""Source checks: the port inventory in Modules/PORTING.md matches the code,
and the port files stay free of Python and of // comments."""

import os
import pathlib
import re
import shlex
import subprocess
import sysconfig

import pytest

TOP = pathlib.Path(__file__).resolve().parent.parent
MODULES = TOP / "Modules"
PORTING = MODULES / "PORTING.md"

PORT_FILES = sorted(p for p in MODULES.glob("*.c")) + [MODULES / "aio-posix.h"]


def inventory():
    """Rows of the function tables: (function, file, status)."""
    rows = []
    for line in PORTING.read_text().splitlines():
        m = re.match(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|\s*`([^`]+)`\s*\|\s*(\w+)", line)
        if m:
            rows.append(m.groups())
    return rows


def defined_in(name, path):
    text = path.read_text()
    # A definition: the name at the start of a declarator, followed by "(",
    # on a line that is not a call (ends without ";" before the body).
    pat = re.compile(r"^(?:[A-Za-z_][\w \t\*]*[\s\*])?%s\s*\([^;]*?\)\s*\{" % re.escape(name),
                     re.M | re.S)
    return pat.search(text) is not None


def test_inventory_is_not_empty():
    rows = inventory()
    assert len(rows) > 80
    files = {f for _, f, _ in rows}
    for expected in ["Modules/aio-posix.c", "Modules/async.c", "Modules/fdmon-poll.c",
                     "Modules/fdmon-epoll.c", "Modules/fdmon-io_uring.c",
                     "Modules/lockcnt.c", "Modules/qemu-timer.c",
                     "Modules/event_notifier-posix.c"]:
        assert expected in files, expected


@pytest.mark.parametrize("name,file,status", inventory())
def test_inventory_entry(name, file, status):
    path = TOP / file
    assert status in ("ported", "dropped", "added"), status
    if status in ("ported", "added"):
        assert defined_in(name, path), f"{name} is not defined in {file}"
    else:
        assert not defined_in(name, path), f"{name} is listed as dropped but defined in {file}"


def test_aio_posix_order_follows_upstream():
    """Functions of the seed keep their upstream order in aio-posix.c."""
    seed_order = [n for n, f, s in inventory() if f == "Modules/aio-posix.c" and s == "ported"]
    text = (MODULES / "aio-posix.c").read_text()
    positions = []
    for name in seed_order:
        m = re.search(r"^(?:[A-Za-z_][\w \t\*]*[\s\*])?%s\s*\(" % re.escape(name), text, re.M)
        assert m, name
        positions.append(m.start())
    assert positions == sorted(positions)


@pytest.mark.parametrize("path", PORT_FILES, ids=lambda p: p.name)
def test_port_file_has_no_python(path):
    text = path.read_text()
    assert "Python.h" not in text
    assert "PyObject" not in text


@pytest.mark.parametrize("path", PORT_FILES, ids=lambda p: p.name)
def test_port_file_header_and_comments(path):
    text = path.read_text()
    head = text[:2500]
    assert "GPL" in head and "Divergences: see Modules/PORTING.md" in head
    # No // comments in port files (QEMU style); ignore "://" in URLs.
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
        assert not re.search(r"(?<![:/])//", stripped), f"{path.name}:{lineno}: // comment"


def test_divergences_are_tagged():
    """Every port file that diverges says so with cevent: tags."""
    for name in ["aio-posix.c", "async.c", "fdmon-io_uring.c", "qemu-timer.c"]:
        assert "cevent:" in (MODULES / name).read_text(), name


# ---- the binding sees the port only through its public headers ----------

BINDING = MODULES / "_cevent"
FACE = MODULES / "_loopcore"
# The floor above the port.
BINDING_FILES = sorted(BINDING.glob("*.[ch]"))

#: The port's private headers: what QEMU keeps under util/.
PRIVATE_PORT_HEADERS = ["aio-posix.h"]


def aio_context_fields():
    """Member names of struct AioContext (Modules/include/block/aio.h)."""
    text = (MODULES / "include" / "block" / "aio.h").read_text()
    body = re.search(r"^struct AioContext \{(.*?)^\};", text, re.M | re.S)
    assert body, "struct AioContext not found"
    body = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
    fields = set()
    for decl in body.split(";"):
        m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl.strip())
        if m:
            fields.add(m.group(1))
    return fields


def test_aio_context_fields_found():
    fields = aio_context_fields()
    for name in ["notify_me", "list_lock", "gsource_fd", "aio_handlers",
                 "bh_slice_list", "stats", "notifier", "tlg"]:
        assert name in fields, name


@pytest.mark.parametrize("path", BINDING_FILES, ids=lambda p: p.name)
def test_binding_uses_public_port_headers_only(path):
    text = path.read_text()
    for header in PRIVATE_PORT_HEADERS:
        assert not re.search(r'#\s*include\s+"(\.\./)?%s"' % re.escape(header),
                             text), f"{path.name} includes {header}"


@pytest.mark.parametrize("path", BINDING_FILES, ids=lambda p: p.name)
def test_binding_touches_no_port_internal_field(path):
    """No AioContext member and no AioHandler node is reached into: what
    the binding needs becomes a port function (Modules/PORTING.md)."""
    fields = aio_context_fields()
    # Comments out, line numbers kept.
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                  path.read_text(), flags=re.S)
    bad = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"(?:\bctx|->ctx)\s*->\s*(\w+)", line):
            if m.group(1) in fields:
                bad.append(f"{path.name}:{lineno}: ->{m.group(1)}")
        if re.search(r"\bAioHandler\b", line):
            bad.append(f"{path.name}:{lineno}: AioHandler")
    assert not bad, "\n".join(bad)


# ---- the face is a client of the binding's C API ------------------------

@pytest.mark.parametrize("path", BINDING_FILES, ids=lambda p: p.name)
def test_binding_does_not_know_the_face(path):
    """The binding knows nothing of the asyncio face (cevent._loopcore):
    the face uses the binding, never the other way round."""
    text = path.read_text()
    for name in ["loopcore", "LoopCore", "_loop", "loop_face",
                 "cev_loop_exec", "FdWatch", "cev_transport",
                 "RingReader"]:
        assert name not in text, f"{path.name} names {name}"


def test_face_files_are_where_the_layout_says():
    """The asyncio face's C is in Modules/_loopcore/, one file per type."""
    names = {p.name for p in FACE.glob("*.c")}
    assert {"loopcoreobject.c", "fdwatchobject.c", "transportobject.c",
            "ringreaderobject.c", "module.c", "state.c"} <= names
    assert not list(BINDING.glob("loop*.c"))
    assert not list(BINDING.glob("transport*.c"))


@pytest.mark.parametrize("path", sorted(FACE.glob("*.[ch]")),
                         ids=lambda p: p.name)
def test_face_includes_only_the_c_api(path):
    """The face's own headers are cevent.h and loopcore.h; the rest are
    CPython's and the system's, never the port's or the binding's."""
    for m in re.finditer(r'#\s*include\s+([<"])([^>"]+)[>"]',
                         path.read_text()):
        kind, header = m.groups()
        if kind == '"':
            assert header in ("cevent.h", "loopcore.h"), \
                f"{path.name} includes \"{header}\""
        else:
            assert not header.startswith(("qemu/", "block/", "qapi/")), \
                f"{path.name} includes <{header}>"


def _loaded_library_exports(*stems):
    """The dynamic symbols exported by the shared libraries of this
    process whose file names start with @stems (libc, libm)."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith(stems):
                paths.add(path)
    assert paths, stems
    names = set()
    for path in paths:
        out = subprocess.run(["nm", "-D", "--defined-only", path],
                             capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            names.add(line.split()[-1].split("@")[0])
    return names


@pytest.fixture(scope="module")
def face_objects(tmp_path_factory):
    """The face's C files compiled alone, with only cevent.h's directory
    and CPython's headers on the include path: {file stem: (defined,
    undefined)} from nm."""
    from cevent import _cevent

    out = tmp_path_factory.mktemp("face")
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = ["-std=gnu11", "-fPIC", "-D_GNU_SOURCE", "-fvisibility=hidden",
             "-I", str(TOP / "Lib" / "cevent" / "include"),
             "-I", sysconfig.get_paths()["include"]]
    if _cevent.HAVE_IO_URING:
        flags.append("-DCONFIG_LINUX_IO_URING")
    symbols = {}
    for src in sorted(FACE.glob("*.c")):
        obj = out / (src.stem + ".o")
        subprocess.run(cc + flags + ["-c", str(src), "-o", str(obj)],
                       check=True)
        nm = subprocess.run(["nm", str(obj)], capture_output=True,
                            text=True, check=True).stdout
        defined, undefined = set(), set()
        for line in nm.splitlines():
            parts = line.split()
            if parts[-2] == "U":
                undefined.add(parts[-1])
            elif parts[-2] in "TDBRC":
                defined.add(parts[-1])
        symbols[src.stem] = (defined, undefined)
    return symbols


def test_face_objects_reference_only_the_c_api_and_cpython(face_objects):
    """What the face's object files need from outside the face: CPython's
    API, the C library, and the C API pointer, which the face defines
    itself (state.c) and fills from cevent._cevent's capsule.  No symbol
    of the port or the binding."""
    ours = set().union(*(d for d, _ in face_objects.values()))
    libc = _loaded_library_exports("libc.so", "libc-", "libm.so", "libm-")
    assert "CEvent_API" in ours
    bad = []
    for stem, (_, undefined) in sorted(face_objects.items()):
        for name in sorted(undefined - ours):
            if name.startswith(("Py", "_Py")) or name in libc \
                    or name == "_GLOBAL_OFFSET_TABLE_":     # the linker's
                continue
            bad.append(f"{stem}.o: {name}")
    assert not bad, "\n".join(bad)


def test_face_files_use_only_the_files_listed_before_them(face_objects):
    """No cycle inside the face: each file uses only files that
    loopcore.h lists before it."""
    order = re.findall(r"^ \*   (\w+)\.c\s", (FACE / "loopcore.h").read_text(),
                       re.M)
    assert sorted(order) == sorted(face_objects), order
    owner = {name: stem for stem, (defined, _) in face_objects.items()
             for name in defined}
    bad = []
    for stem, (_, undefined) in face_objects.items():
        for name in undefined:
            used = owner.get(name)
            if used is not None and order.index(used) >= order.index(stem):
                bad.append(f"{stem}.c uses {name} of {used}.c")
    assert not bad, "\n".join(sorted(bad))


def test_face_extension_links_to_no_cevent_symbol():
    """The built extension resolves nothing against cevent._cevent: its
    undefined dynamic symbols are CPython's and the C library's."""
    from cevent import _loopcore

    libc = _loaded_library_exports("libc.so", "libc-", "libm.so", "libm-")
    out = subprocess.run(["nm", "-D", "--undefined-only", _loopcore.__file__],
                         capture_output=True, text=True, check=True).stdout
    bad = [name for name in (line.split()[-1].split("@")[0]
                             for line in out.splitlines())
           if not name.startswith(("Py", "_Py")) and name not in libc
           and not name.startswith(("_ITM_", "__gmon_start__",
                                    "__cxa_finalize"))
           # a CEVENT_SANITIZE build: the sanitizers' runtime
           and not name.startswith(("__asan_", "__ubsan_", "__tsan_",
                                    "__lsan_", "__sanitizer_"))]
    assert not bad, bad


def _c_string_literals(path):
    """The string literals of a C file, comments left out."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    return re.findall(r'"((?:\\.|[^"\\])*)"', text)


def test_asyncio_layout_names_only_in_the_layout_file():
    """What the face's C code knows of asyncio's private layout comes from
    Lib/cevent/_asyncio_layout.py (through cevent._loopcore.configure()): no C
    file of the face names those attributes itself."""
    from cevent import _asyncio_layout as layout

    # _LoopCore's data descriptors must carry BaseEventLoop's names in C
    # (a PyGetSetDef table): they are checked against LOOP_ATTRS below.
    # _when_ns and the two _slow aliases are cevent's own names.
    names = set(layout.HANDLE_SLOTS + layout.TIMER_SLOTS +
                layout.HANDLE_ATTRS + layout.TRANSPORT_ATTRS +
                layout.KEY_FIELDS)
    names -= {"_when_ns", "_read_ready__data_received_slow", "_write_slow"}
    names -= set(layout.LOOP_ATTRS)     # "_scheduled": also the loop's
    bad = []
    for path in sorted(FACE.glob("*.c")) + sorted(FACE.glob("*.h")):
        for literal in _c_string_literals(path):
            for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", literal):
                if word in names and literal.strip() == word:
                    bad.append(f"{path.name}: \"{literal}\"")
    assert not bad, "\n".join(bad)


def test_loop_core_descriptors_are_the_layout_files():
    """_LoopCore replaces exactly the BaseEventLoop attributes that
    cevent._asyncio_layout checks (LOOP_ATTRS), plus its own _iterate."""
    import types

    from cevent import _asyncio_layout as layout
    from cevent._loopcore import _LoopCore

    descriptors = {name for name, value in vars(_LoopCore).items()
                   if isinstance(value, types.GetSetDescriptorType)}
    assert descriptors == set(layout.LOOP_ATTRS) | {"_iterate"}
