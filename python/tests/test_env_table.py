"""docs/API.md's table of environment variables is the one list of them: every DOVE_* variable a
source file reads is in it, and every file a row names as a reader does mention the variable."""
import os
import re

from dove_testutil import ROOT

SOURCE_DIRS = ("lib", "native", "scripts", "tools", "bench", "test", "examples", "python")
SKIP_DIRS = {"node_modules", "dist", "build", "generated", "results", "__pycache__"}
# How each language reads a variable (shell: only with a default or a test, which script-local
# variables such as DOVE_ROOT never use).
READS = [
    re.compile(r"process\.env\.([A-Z][A-Z0-9_]*)"),
    re.compile(r"\benv\.(DOVE_[A-Z0-9_]*)"),
    re.compile(r"(?:getenv|FromEnv)\(\"([A-Z][A-Z0-9_]*)\""),
    re.compile(r"\$\{(DOVE_[A-Z0-9_]+)(?::?-|:\+)"),
    re.compile(r"os\.environ(?:\.get\(|\[)\"([A-Z][A-Z0-9_]*)\""),
]
ROW = re.compile(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \| (.*?) \| .* \|$")


def table() -> dict:
    with open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Environment variables"):]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice"
            rows[m.group(1)] = re.findall(r"`([\w./-]+\.(?:ts|cpp|sh|py)|scripts/[\w-]+)`", m.group(2))
    return rows


def sources():
    for top in SOURCE_DIRS:
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            for name in files:
                path = os.path.join(folder, name)
                if name.endswith((".ts", ".js", ".cpp", ".h", ".py", ".sh")) or os.path.dirname(path) == os.path.join(ROOT, "scripts"):
                    yield path


def test_every_dove_variable_read_is_in_the_table() -> None:
    rows = table()
    missing = {}
    for path in sources():
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for pattern in READS:
            for name in pattern.findall(text):
                if name.startswith("DOVE_") and name not in rows:
                    missing.setdefault(name, os.path.relpath(path, ROOT))
    assert missing == {}


def test_every_row_names_files_that_read_it() -> None:
    rows = table()
    assert len(rows) > 0
    for name, readers in rows.items():
        assert readers, f"{name}: no reader named"
        for reader in readers:
            path = os.path.join(ROOT, reader)
            assert os.path.isfile(path), f"{name}: {reader} does not exist"
            with open(path, encoding="utf-8", errors="replace") as f:
                assert name in f.read(), f"{name}: {reader} does not mention it"
