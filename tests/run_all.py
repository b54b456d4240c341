"""Run the whole suite twice: on the embedded default (SQLite), then on a real PostgreSQL started here.

`make test` calls this after ruff and the installs. Extra arguments go to pytest (e.g. `-k grid`).
Exit code: 0 when both runs pass; otherwise the first failing run's code (5, "no tests ran", is a failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import PROJECT_ROOT, ServerUnavailable, postgres_server


def pytest_run(label: str, extra_env: dict[str, str], args: list[str]) -> int:
    env = {**os.environ, **extra_env}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pyproject.toml names the test settings
    started = time.monotonic()
    print(f"\n=== {label} ===", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=PROJECT_ROOT, env=env)
    print(f"=== {label}: exit {code} after {time.monotonic() - started:.0f} s ===", flush=True)
    if code == 5:
        print(f"=== {label}: pytest collected no tests; that is a failure here ===", flush=True)
    return code


def main(args: list[str]) -> int:
    code = pytest_run("SQLite (embedded default)", {"DATABASE_URL": ""}, args)
    if code != 0:
        return code
    if os.environ.get("CUSTODIA_SKIP_POSTGRES") == "1":
        print("=== PostgreSQL run skipped (CUSTODIA_SKIP_POSTGRES=1) ===")
        return 0
    try:
        with postgres_server() as postgres:
            # The corpus and pure-parsing tests prove nothing more on another database: run what touches it.
            return pytest_run("PostgreSQL", {"DATABASE_URL": postgres.url}, ["-m", "not corpus", *args])
    except ServerUnavailable as exc:
        print(f"PostgreSQL could not be started: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
