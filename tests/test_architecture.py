"""The doors between the apps, held by reading the imports (no Django needed).

The four apps are stacked in one direction, ``search → evidence → cases → audit``: an app imports only
the apps below it (``custodia``, the project's settings and shared web layer, is not an app).

Search reads evidence through one door: ``evidence.reading`` (the acquired bytes and the unlock
credentials), plus the evidence models, the evidence selectors, and the signals evidence sends
(``evidence.signals``: evidence announces, search listens, and evidence never imports search). Any other
``evidence`` module imported anywhere under ``search/`` (migrations aside: they are history) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEARCH_MAY_IMPORT_FROM_EVIDENCE = frozenset(
    {"evidence.reading", "evidence.models", "evidence.selectors", "evidence.signals"}
)

# Bottom first: each app may import those before it in this list, never those after it.
APP_STACK = ("audit", "cases", "alerts", "evidence", "hashsets", "search")


def _app_modules(app: str) -> list[Path]:
    return sorted(path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.relative_to(ROOT).parts)


def _search_modules() -> list[Path]:
    return _app_modules("search")


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at its top or inside a function (``from a import b``: a and a.b)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def test_each_app_imports_only_the_apps_below_it():
    upward = {}
    for level, app in enumerate(APP_STACK):
        above = APP_STACK[level + 1 :]
        for path in _app_modules(app):
            wrong = sorted({name for name in _imports(path) if name.split(".", 1)[0] in above})
            if wrong:
                upward[path.relative_to(ROOT).as_posix()] = wrong
    assert not upward, f"the apps stack as {' → '.join(reversed(APP_STACK))}; these import upwards: {upward}"


def _evidence_imports(path: Path) -> set[str]:
    """Every ``evidence`` module the file imports, at its top or inside a function."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "evidence":  # from evidence import reading → evidence.reading
                imported.update(f"evidence.{alias.name}" for alias in node.names)
            else:
                imported.add(node.module)
    return {name for name in imported if name == "evidence" or name.startswith("evidence.")}


def _allowed(module: str) -> bool:
    return any(module == door or module.startswith(door + ".") for door in SEARCH_MAY_IMPORT_FROM_EVIDENCE)


def test_search_reads_evidence_only_through_its_doors():
    trespasses = {}
    for path in _search_modules():
        name = path.relative_to(ROOT).as_posix()
        outside = {module for module in _evidence_imports(path) if not _allowed(module)}
        if outside:
            trespasses[name] = sorted(outside)
    assert not trespasses, (
        "search may import from evidence only "
        f"{sorted(SEARCH_MAY_IMPORT_FROM_EVIDENCE)}; add what it needs to evidence/reading.py instead: {trespasses}"
    )


def test_the_guard_sees_every_form_of_import(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import evidence.storage.base\n"
        "from evidence import reading, intake\n"
        "from evidence.models import Evidence\n"
        "def later():\n"
        "    from evidence.services.escrow import secret_values_for_extraction\n"
        "from . import evidence\n"
    )
    imported = _evidence_imports(module)
    assert imported == {
        "evidence.storage.base",
        "evidence.reading",
        "evidence.intake",
        "evidence.models",
        "evidence.services.escrow",
    }
    assert sorted(name for name in imported if not _allowed(name)) == [
        "evidence.intake",
        "evidence.services.escrow",
        "evidence.storage.base",
    ]


def test_no_module_imports_another_modules_private_names():
    """A name starting with ``_`` is its module's own: what another module needs (the code, tests or
    benchmarks) is made public and documented instead."""
    ours = {*APP_STACK, "custodia", "tests", "bench"}
    private = []
    for top in sorted(ours):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module.split(".", 1)[0] not in ours:
                        continue
                    private += [
                        f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")
                    ]
    assert not private, f"make these public (and document them) or keep them in their module: {private}"
