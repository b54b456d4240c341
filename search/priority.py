"""The business rules that order extraction work, in one place (the Hansken design's "priority rules").

Celery priorities run 0 (first) to 9 (last) on Redis; the file-system broker ignores them and runs in order.

| Rule | Priority |
|---|---|
| case priority urgent | 0 |
| case priority high | 2 |
| case priority normal | 5 |
| case priority low | 8 |
| memory images (volatile facts, small) | one step earlier |
| a case under legal hold (a court date is set) | one step earlier |
| automatic runs after sealing, when nobody asked | one step later |
"""

from __future__ import annotations

from cases.models import Case
from evidence.models import Evidence, EvidenceKind

BY_CASE_PRIORITY = {"urgent": 0, "high": 2, "normal": 5, "low": 8}


def extraction_priority(*, case: Case, evidence: Evidence, requested: bool = True) -> tuple[int, str]:
    priority = BY_CASE_PRIORITY.get(case.priority, 5)
    reasons = [f"case priority {case.priority}"]
    if evidence.kind == EvidenceKind.MEMORY_IMAGE:
        priority -= 1
        reasons.append("memory image")
    if case.legal_hold:
        priority -= 1
        reasons.append("legal hold")
    if not requested:
        priority += 1
        reasons.append("automatic run")
    return max(0, min(9, priority)), ", ".join(reasons)
