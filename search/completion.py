"""Completion for the search box: the query language's fields, the property names of a case's traces, its tags.

Read-only, through the same access policy as searching (``SEARCH_TRACES``): an outsider learns nothing,
not even which properties the case's traces have.
"""

from __future__ import annotations

from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from evidence.models import Evidence
from search.models import CasePropertyName
from search.query.ast import quote
from search.selectors import case_tag_suggestions

# The fields of the query language that are not properties (docs/query.md, "Fields").
QUERY_FIELDS = ("type:", "tag:", "evidence:", "deleted:", "name:", "path:", "uid:", "text:")
MAX_PROPERTY_NAMES = 2000
MAX_TAGS = 200
MAX_EVIDENCE = 200
# Characters that may stand before a term and are kept in front of its completion: -type:…, (tag:…
_TERM_OPENERS = "-("


def case_property_names(*, case: Case) -> list[str]:
    """The property names the case's traces carry (recorded as extraction commits them), sorted."""
    names = CasePropertyName.objects.filter(case=case).values_list("name", flat=True)
    return list(names.order_by("name")[:MAX_PROPERTY_NAMES])


def _matches(name: str, prefix: str) -> int | None:
    """How well ``name`` completes ``prefix``: 0 from its start, 1 from a later part (``sent`` → email.sentOn)."""
    lowered, wanted = name.lower(), prefix.lower()
    if lowered.startswith(wanted):
        return 0
    if any(part.startswith(wanted) for part in lowered.split(".")[1:]):
        return 1
    return None


def _tag_term(name: str) -> str:
    return f"tag:{name}" if name.replace("-", "").replace("_", "").isalnum() else f"tag:{quote(name)}"


def trace_completions(*, user: User, case_id: int, prefix: str, limit: int = 20) -> list[dict]:
    """What the term ``prefix`` may become: ``[{"value": "email.sentOn", "kind": "property"}, …]``.

    Kinds: ``field`` (type:, tag: …), ``property`` (a property name, to be followed by ``:``), ``tag``
    (``tag:relevant``) and ``evidence`` (``evidence:<id>``, with the item's ``label``: ``evidence:lap``
    offers the items whose label starts with or holds "lap"). Exact starts come before matches inside a
    property name; an empty prefix lists the fields, then the case's most used tags, then property names.
    """
    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    opener = prefix[: len(prefix) - len(prefix.lstrip(_TERM_OPENERS))]
    term = prefix[len(opener) :]
    candidates: list[tuple[int, int, dict]] = []
    if term.lower().startswith("evidence:"):
        # Evidence by its label (what people call it); the term itself takes the id, which the label shows.
        wanted = term[len("evidence:") :].strip('"').lower()
        for evidence_id, label in Evidence.objects.filter(case=case).values_list("pk", "label")[:MAX_EVIDENCE]:
            rank = 0 if label.lower().startswith(wanted) or str(evidence_id).startswith(wanted) else 1
            if rank == 0 or wanted in label.lower():
                entry = {"value": f"evidence:{evidence_id}", "kind": "evidence", "label": label}
                candidates.append((rank, 0, entry))
    elif term.lower().startswith("tag:"):
        wanted = term[4:].strip('"').lower()
        for name in case_tag_suggestions(case=case, limit=MAX_TAGS):
            if name.lower().startswith(wanted):
                candidates.append((0, 0, {"value": _tag_term(name), "kind": "tag"}))
    elif ":" not in term:
        for field in QUERY_FIELDS:
            if field.startswith(term.lower()):
                candidates.append((0, 0, {"value": field, "kind": "field"}))
        for name in case_tag_suggestions(case=case, limit=MAX_TAGS):
            # A tag's own name completes too: ``rel`` offers tag:relevant.
            if name.lower().startswith(term.lower()):
                candidates.append((0, 1, {"value": _tag_term(name), "kind": "tag"}))
        for name in case_property_names(case=case):
            rank = _matches(name, term)
            if rank is not None:
                candidates.append((rank, 2, {"value": name, "kind": "property"}))
    candidates.sort(key=lambda candidate: (candidate[0], candidate[1]))
    return [{**entry, "value": opener + entry["value"]} for _, _, entry in candidates[:limit]]
