"""The "privacy diff" over every log call of the project (issue #19): a logger call that passes a user-controlled
value (a username, a query, a case reference, an address, a path, …) must tag it (``Tagged(...)`` or
``tag_value(...)``) so that the privacy filter replaces it, or pass only ids. A static walk over the code, as
``test_privacy_wiring.py`` does for the audit call sites: it fails on an untagged argument (or f-string part)
whose name says it holds such a value."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log"})
# A word of a name that says the value is confidential: ``user.username``, ``query``, ``case.reference``,
# ``client_address``, ``import_path``, ``recipient_email``, …
CONFIDENTIAL_WORDS = frozenset(
    {
        "username",
        "user",
        "users",
        "query",
        "queries",
        "reference",
        "address",
        "addresses",
        "path",
        "paths",
        "filename",
        "email",
        "recipient",
        "title",
        "label",
        "device",
        "keyword",
    }
)
TAGGING_CALLS = frozenset({"Tagged", "tag_value"})


def _is_logger(node: ast.AST) -> bool:
    """``logger``, ``log``, ``self.logger``, ``logging`` (the module's functions), ``logging.getLogger(...)``."""
    if isinstance(node, ast.Name):
        return node.id in {"logging", "log"} or node.id.endswith("logger")
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("logger")
    if isinstance(node, ast.Call):
        return getattr(node.func, "attr", getattr(node.func, "id", "")) == "getLogger"
    return False


def _name_of(node: ast.AST) -> str:
    """The name that says what a value is: ``user.username`` → username, ``data["query"]`` → query."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        return _name_of(node.value)
    return ""


def _confidential(name: str) -> bool:
    words = set(re.split(r"_+", name.lower()))
    return bool(words & CONFIDENTIAL_WORDS)


def _untagged_values(node: ast.AST) -> list[str]:
    """The confidential names among the values of ``node`` that no tagging call wraps."""
    if isinstance(node, ast.Call):
        called = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if called in TAGGING_CALLS:
            return []
        # str(path), repr(query), ", ".join(paths), len(paths) is an id-like count: only conversions pass it on
        if called in {"str", "repr", "format", "join"}:
            return [name for argument in node.args for name in _untagged_values(argument)]
        return []
    if isinstance(node, ast.JoinedStr):
        return [name for part in node.values for name in _untagged_values(part)]
    if isinstance(node, ast.FormattedValue):
        return _untagged_values(node.value)
    if isinstance(node, ast.BinOp):
        return _untagged_values(node.left) + _untagged_values(node.right)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        return _untagged_values(node.value)  # query[:200]
    name = _name_of(node)
    return [name] if name and _confidential(name) else []


def log_call_problems(tree: ast.AST, where: str) -> tuple[int, list[str]]:
    calls, problems = 0, []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in LOG_METHODS or not _is_logger(node.func.value):
            continue
        calls += 1
        arguments = node.args[1:] if node.func.attr == "log" else node.args  # log(level, msg, *args)
        for argument in arguments:
            problems += [f"{where}:{node.lineno} {name}" for name in _untagged_values(argument)]
    return calls, problems


def project_files() -> list[Path]:
    files = []
    for path in sorted(PROJECT_ROOT.glob("*/**/*.py")):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0] in {".venv", "node_modules", "tests", "bench"} or "migrations" in relative.parts:
            continue
        files.append(path)
    return files


def test_every_log_call_tags_its_confidential_values():
    calls, problems = 0, []
    for path in project_files():
        counted, found = log_call_problems(
            ast.parse(path.read_text(), filename=str(path)), str(path.relative_to(PROJECT_ROOT))
        )
        calls += counted
        problems += found
    assert calls >= 30  # the walk sees the project's log calls
    assert problems == []


def test_the_walk_finds_an_untagged_value_and_passes_a_tagged_one():
    source = """
logger.info("%s searched %s", user.username, Tagged("query", query))
logger.warning(f"import of {import_path} failed")
self.logger.error("case %s: %s", case.reference[:20], case.pk)
logging.info("%s", tag_value("user", username))
logger.log(logging.INFO, "run %s of %s", run.pk, str(client_address))
logger.info("%d paths", len(paths))
"""
    calls, problems = log_call_problems(ast.parse(source), "example.py")
    assert calls == 6
    assert problems == [
        "example.py:2 username",
        "example.py:3 import_path",
        "example.py:4 reference",
        "example.py:6 client_address",
    ]
