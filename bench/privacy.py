"""The replacement model's own cost (#19, docs/privacy.md): values per second of each of the ten transformations,
audit rows' details per second, and log lines per second through the logging filter, beside a floor.

    .venv/bin/python bench/privacy.py [--smoke] [--values N] [--seed S]

What it does, in one process with the test settings (their fixed privacy key; nothing touches a database):

1. Each transformation (PR … NI) applied ``--values`` times (default 100,000; ``--smoke`` 2,000) through
   ``Replacer.value`` to distinct values (deterministic from ``--seed``), in one session, each value its own
   message (as an audit row's one tagged value is); the look-up table of MR is the in-memory one.
2. An audit row's details as ``audit_record`` would pass them (``replace_details``): four tagged values (user,
   query, case, client address) under the default policy, beside a few untagged fields.
3. The seed's example line through ``PrivacyLogFilter`` on a record, under Table 3's mapping.
4. Floor: one SHA-256 of each value (what the cheapest anonymisation cannot avoid).

It measures the model alone. What it adds to an audited request (requests per second with and without it, the
issue's goal of under 10 %) is measured by bench/audit.py once the model is wired into ``audit_record``.
Figures are only comparable within one run: the machine is shared. Not a timed test: it never asserts.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

SIZES = {"default": 100_000, "smoke": 2_000}
SEED_LINE = "[user>harm] performed query [query>keyword_query] [keyword>elephant] on project [project>diamond]"
TABLE_3 = {"user": "ER", "query": "PR", "keyword": "SI", "project": "MR"}


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "∞"


def micro(count: int, seconds: float) -> str:
    return f"{seconds / count * 1e6:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the smallest size: runs in a second or two")
    parser.add_argument("--values", type=int, help="values per transformation (default 100,000)")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    count = args.values or SIZES["smoke" if args.smoke else "default"]

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.test")
    import django

    django.setup()
    from audit.privacy import (
        TRANSFORMATIONS,
        MemoryLookupTable,
        Message,
        PrivacyLogFilter,
        PrivacyPolicy,
        Replacer,
        Tagged,
        derived_keys_from_settings,
        replace_details,
    )

    keys = derived_keys_from_settings()
    generator = random.Random(args.seed)
    values = [f"user-{generator.getrandbits(48):012x}" for _ in range(count)]

    rows: list[tuple[str, int, float]] = []
    for code in TRANSFORMATIONS:
        replacer = Replacer(policy=PrivacyPolicy({"user": code}), keys=keys, lookup=MemoryLookupTable())
        for value in values[:100]:  # warm-up: first calls into the cipher, the caches
            replacer.value("user", value, session="bench-session", message=Message())
        started = time.perf_counter()
        for value in values:
            replacer.value("user", value, session="bench-session", message=Message())
        rows.append((f"{code} (one value)", count, time.perf_counter() - started))

    details = [
        {
            "user": Tagged("user", value),
            "query": Tagged("query", f"name:{value} AND type:email"),
            "case": Tagged("case", "DEMO-2026-001"),
            "client_address": Tagged("client_address", "203.0.113.9"),
            "method": "GET",
            "status": 200,
        }
        for value in values
    ]
    started = time.perf_counter()
    for row in details:
        replace_details(row, session="bench-session")
    rows.append(("audit row details (4 tagged values, default policy)", count, time.perf_counter() - started))

    log_filter = PrivacyLogFilter(
        replacer=Replacer(policy=PrivacyPolicy(TABLE_3), keys=keys, lookup=MemoryLookupTable())
    )
    records = [
        logging.LogRecord("bench", logging.INFO, __file__, 0, SEED_LINE.replace("harm", value), None, None)
        for value in values
    ]
    started = time.perf_counter()
    for record in records:
        log_filter.filter(record)
    rows.append(("log line through PrivacyLogFilter (seed line, Table 3)", count, time.perf_counter() - started))

    started = time.perf_counter()
    for value in values:
        hashlib.sha256(value.encode()).hexdigest()
    rows.append(("floor: SHA-256 of the value", count, time.perf_counter() - started))

    print(f"\nReplacement model (#19): {count:,} each, one process, test settings\n")
    print("| measure | per second | µs each |")
    print("|---|---:|---:|")
    for name, done, seconds in rows:
        print(f"| {name} | {rate(done, seconds)} | {micro(done, seconds)} |")
    print()


if __name__ == "__main__":
    main()
