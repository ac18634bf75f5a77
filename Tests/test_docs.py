"""The README is the front door: short, its examples run, and every link in
it and in docs/ leads somewhere that exists."""

import pathlib
import re
import subprocess
import sys

import pytest

TOP = pathlib.Path(__file__).resolve().parent.parent
README = TOP / "README.md"
DOCS = sorted((TOP / "docs").glob("*.md"))

# [text](target): inline Markdown links, not images or code.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _links(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [m.group(1) for m in LINK.finditer(text)]


def test_readme_is_a_front_door():
    """At most about 250 lines; the details live in docs/, and the README
    links every docs/ file."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    linked = {t.split("#")[0] for t in _links(README)}
    assert DOCS, "docs/ is empty"
    for doc in DOCS:
        assert f"docs/{doc.name}" in linked, f"README does not link {doc.name}"


@pytest.mark.parametrize("path", [README] + DOCS, ids=lambda p: p.name)
def test_links_lead_somewhere(path):
    """Every relative link names a file or directory of the tree."""
    bad = []
    for target in _links(path):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            bad.append(target)
    assert not bad, f"{path.name}: dead links {bad}"


def _python_examples():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_both_examples():
    examples = _python_examples()
    assert any("AioContext" in e for e in examples)
    assert any("cevent.run(" in e for e in examples)


@pytest.mark.parametrize("index", range(len(_python_examples())))
def test_readme_examples_run(index, tmp_path):
    """Each Python example of the README runs as shown, prints what its
    comments say and nothing on stderr."""
    code = _python_examples()[index]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for expected in re.findall(r"# -> \"([^\"]+)\"|# (b'[^']*')", code):
        text = expected[0] or expected[1]
        assert text in proc.stdout, (text, proc.stdout)
