"""The module refuses to load outside the main interpreter (docs/guarantees.md,
"Subinterpreters"): its open contexts, fork handlers and virtual clock are
process-wide, and the port drops callback references from any thread
with PyGILState_Ensure().
An import in a subinterpreter, isolated (its own GIL, 3.12+) or legacy
(sharing the main GIL), raises ImportError, and the main interpreter's
module keeps working."""

import sys

import pytest

import cevent

if sys.version_info >= (3, 13):
    import _interpreters

    def run_in_subinterpreter(code, isolated):
        interp = _interpreters.create("isolated" if isolated else "legacy")
        try:
            return _interpreters.run_string(interp, code)
        finally:
            _interpreters.destroy(interp)
else:
    import _xxsubinterpreters as _interpreters

    def run_in_subinterpreter(code, isolated):
        # 3.11 knows only legacy subinterpreters; `isolated` is accepted
        # and has no effect there.
        interp = _interpreters.create(isolated=isolated)
        try:
            return _interpreters.run_string(interp, code)
        finally:
            _interpreters.destroy(interp)

# Runs in the subinterpreter: try the import, write down what happened.
CODE = """\
try:
    import cevent
except ImportError as exc:
    result = "ImportError: " + str(exc)
except BaseException as exc:
    result = "other: " + repr(exc)
else:
    result = "imported"
with open(PATH, "w") as f:
    f.write(result)
"""

KINDS = ["legacy"]
if sys.version_info >= (3, 12):
    KINDS.append("isolated")


@pytest.mark.parametrize("kind", KINDS)
def test_import_in_subinterpreter_fails_clearly(kind, tmp_path):
    path = tmp_path / "result"
    err = run_in_subinterpreter(CODE.replace("PATH", repr(str(path))),
                                isolated=(kind == "isolated"))
    assert err is None
    result = path.read_text()
    assert result.startswith("ImportError: "), result
    assert "cevent._cevent does not support loading in subinterpreters" \
        in result

    # The main interpreter's module is untouched and works.
    with cevent.AioContext() as ctx:
        ran = []
        ctx.bh_schedule_oneshot(lambda: ran.append(1))
        assert ctx.poll(False)
        assert ran == [1]
