"""Server-rendered pages of the search app: extraction runs (partials of the evidence page), trace search,
the trace page, tags, notes and saved searches. Thin: the same selectors and services as the API."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit.context import add_details
from cases import permissions as perms
from cases.selectors import case_permissions
from custodia.access import LOGGED_IN, requires
from custodia.errors import NotFound, ServiceError
from custodia.web import case_view, evidence_view, run_service
from search import collaboration, columns, completion, selectors, services
from search import data as trace_data
from search.backends.base import DEFAULT_DATE_PROPERTY, SORTS
from search.hashset_marks import query_hiding_known_files
from search.models import RunState, Trace
from search.query.ast import PROPERTY_NAME_RE, narrowed_to_facet, property_name_error


@evidence_view()
def evidence_extractions(request, evidence):
    runs = list(selectors.extraction_runs(evidence=evidence)[:10])
    context = {
        "evidence": evidence,
        "runs": runs,
        "busy": any(run.state in (RunState.QUEUED, RunState.RUNNING) for run in runs),
        "counts": selectors.trace_counts(evidence=evidence),
        "granted": case_permissions(user=request.user, case=evidence.case),
    }
    return render(request, "search/_extractions.html", context)


@require_POST
@evidence_view(perms.EXTRACT_EVIDENCE)
def evidence_extract(request, evidence):
    run_service(
        request, lambda: services.extraction_start(actor=request.user, evidence=evidence), success="Extraction queued."
    )
    return redirect("evidence:detail", evidence_id=evidence.pk)


@case_view(perms.SEARCH_TRACES)
def trace_search(request, case):
    """The search page: the box, a timeline of the hits, facets that refine, and a sortable table."""
    query = request.GET.get("q", "")
    sort = request.GET.get("sort", "")
    sort = sort if sort in SORTS else ""
    date_property = request.GET.get("date", "")
    if not PROPERTY_NAME_RE.fullmatch(date_property) or property_name_error(date_property):
        # Not a property name: the default rather than an error that every later link would carry along.
        date_property = DEFAULT_DATE_PROPERTY
    chosen_columns = request.GET.get("columns", "")
    chosen_columns = chosen_columns if chosen_columns in columns.COLUMN_SETS else ""
    # What every link on the page carries along, so a sort or a zoom keeps the rest of the view.
    # Properties the detective adds to the column set, e.g. "picture.exif.Make, file.mimeType".
    extra = columns.extra_columns(request.GET.get("extra", ""))
    # Counting every hit of a common word takes seconds: only when the detective asks for it.
    exact = request.GET.get("exact") == "1"
    # The "hide known files" switch: the query, less what a known-good hash set holds (NSRL's system files).
    hide_known = request.GET.get("hideKnown") == "1"
    state = {
        "q": query,
        "sort": sort,
        "columns": chosen_columns,
        "extra": ",".join(column.key for column in extra),
        "date": date_property,
        "exact": "1" if exact else "",
        "hideKnown": "1" if hide_known else "",
    }
    result, error = None, ""
    try:
        result = selectors.traces_search(
            user=request.user,
            case_id=case.pk,
            query=query_hiding_known_files(query) if hide_known else query,
            facets=[*selectors.DEFAULT_FACETS, "date"],
            sort=sort,
            cursor=request.GET.get("cursor") or None,
            limit=50,
            date_property=date_property,
            exact=exact,
        )
    except ServiceError as exc:
        error = exc.detail
    add_details(query=query[:2000])
    facet_links = {}
    query_node = None
    column_set = chosen_columns or columns.DEFAULT_COLUMN_SET
    if result:
        # The search parsed this query already; the page reads its type and date clauses from the tree.
        query_node = selectors.query_parse(query)
        for name, entries in result["facets"].items():
            if name == "date":
                continue  # the timeline draws it
            facet_links[name] = [
                {**entry, "href": _with(state, q=narrowed_to_facet(query_node, facet=name, value=entry["value"]))}
                for entry in entries
                if entry["value"] != ""
            ]
        column_set = columns.column_set_for(
            chosen=chosen_columns,
            node=query_node,
            type_counts={entry["value"]: entry["count"] for entry in result["facets"].get("type", [])},
            total=result["total"],
        )
    base_columns = columns.COLUMN_SETS[column_set][1]
    shown = [*base_columns, *(column for column in extra if column.key not in {c.key for c in base_columns})]
    template = "search/_results.html" if request.headers.get("HX-Request") else "search/search.html"
    return render(
        request,
        template,
        {
            "case": case,
            "query": query,
            "query_node": query_node,
            "state": state,
            "result": result,
            "error": error,
            "facets": facet_links,
            "date_property": date_property,
            "date_properties": _date_property_choices(date_property),
            "column_set": column_set,
            "column_sets": [(key, label) for key, (label, _) in columns.COLUMN_SETS.items()],
            "headers": [_header(column, state) for column in shown],
            "rows": [
                {"hit": hit, "cells": [(column.link, columns.cell(hit, column)) for column in shown]}
                for hit in result["hits"]
            ]
            if result
            else [],
            # A page swapped in by HTMX also replaces the box, so it shows the query of what is shown.
            "swap_query_box": bool(request.headers.get("HX-Request")),
            "next_url": _with(state, cursor=result["cursor"]) if result and result["cursor"] else "",
            "count_all_url": _with(state, exact="1"),
            # Collaboration: saved searches, bulk tagging and CSV export on the search page.
            # (Not on an HTMX swap of the results, which does not show them.)
            "saved_searches": [] if request.headers.get("HX-Request") else list(selectors.saved_searches(case=case)),
            "can_annotate": perms.ANNOTATE_TRACES in case_permissions(user=request.user, case=case),
        },
    )


def _with(state: dict, **changes) -> str:
    """A link to the search page with ``changes`` applied to its current parameters."""
    return "?" + urlencode({key: value for key, value in {**state, **changes}.items() if value})


def _date_property_choices(current: str) -> list[tuple[str, str]]:
    choices = list(columns.DATE_PROPERTIES.items())
    if current not in columns.DATE_PROPERTIES:
        choices.append((current, current))
    return choices


def _header(column: columns.Column, state: dict) -> dict:
    """A column header: its sort link (ascending first, then descending) and its aria-sort state."""
    header = {"label": column.label, "href": "", "aria_sort": ""}
    if column.sort:
        current = state["sort"]
        if current == column.sort:
            header["aria_sort"], next_sort = "ascending", f"-{column.sort}"
        elif current == f"-{column.sort}":
            header["aria_sort"], next_sort = "descending", column.sort
        else:
            next_sort = column.sort
        header["href"] = _with(state, sort=next_sort)
    return header


@case_view(perms.SEARCH_TRACES)
def trace_complete(request, case):
    """Completions for the search box as ``<option>``s of its datalist.

    ``prefix`` is the term being typed; the box itself sends ``q`` (the whole query), whose last term is
    completed and the rest kept, so that choosing an option leaves the query whole.
    """
    if "prefix" in request.GET:
        head, prefix = "", request.GET["prefix"]
    else:
        text = request.GET.get("q", "")
        split_at = max(text.rfind(" "), text.rfind("\t")) + 1
        head, prefix = text[:split_at], text[split_at:]
    add_details(prefix=prefix[:200])
    completions = completion.trace_completions(user=request.user, case_id=case.pk, prefix=prefix)
    return render(request, "search/_completions.html", {"head": head, "completions": completions})


@requires(LOGGED_IN)
@login_required
def query_help(request):
    """The query language's guide (docs/query.md), linked from the search box's syntax help."""
    guide = (settings.BASE_DIR / "docs" / "query.md").read_text(encoding="utf-8")
    return render(request, "search/query_help.html", {"guide": guide})


# ---------------------------------------------------------------- the trace page

EMAIL_HEADERS = ("from", "to", "cc", "bcc", "subject", "sentOn", "messageId")
TEXT_SHOWN = 200_000
CHILDREN_SHOWN = 500


def _trace_of(request, case, trace_uid: str) -> Trace:
    return selectors.trace_get(user=request.user, case_id=case.pk, uid=trace_uid)


def _property_groups(trace: Trace) -> list[dict]:
    """Properties grouped by type prefix (``email.from`` → ``email``), each group with the tool that made it."""
    groups: dict[str, dict] = {}
    for key in sorted(trace.properties or {}):
        prefix = key.split(".", 1)[0]
        tool = (trace.tools or {}).get(prefix) or []
        group = groups.setdefault(prefix, {"type": prefix, "tool": " ".join(str(part) for part in tool), "rows": []})
        group["rows"].append({"name": key, "value": trace.properties[key]})
    order = {name: index for index, name in enumerate(trace.types or [])}
    return sorted(groups.values(), key=lambda group: (order.get(group["type"], len(order)), group["type"]))


def _is_picture(trace: Trace, entry: dict | None) -> bool:
    mime_type = (entry or {}).get("mime_type") or ""
    return entry is not None and ("picture" in (trace.types or []) or mime_type.startswith("image/"))


def _hex_context(request, trace: Trace) -> dict:
    names = [entry.get("name") for entry in trace.streams or []]
    stream = request.GET.get("stream") or ("raw" if "raw" in names else (names[0] if names else ""))
    try:
        offset = max(int(request.GET.get("offset") or 0), 0)
    except ValueError:
        offset = 0
    context = {"hex_stream": stream, "hex": None, "hex_error": ""}
    if not stream:
        return context
    try:
        context["hex"] = trace_data.hex_page(trace=trace, stream=stream, offset=offset)
    except ServiceError as exc:
        context["hex_error"] = exc.detail
    add_details(view="hex", stream=stream, offset=offset)
    return context


@case_view(perms.SEARCH_TRACES)
def trace_detail(request, case, trace_uid: str):
    """One trace: properties by type and tool, streams, text, a paged hex view, a thumbnail, e-mail, family."""
    trace = _trace_of(request, case, trace_uid)
    if request.headers.get("HX-Request") and request.GET.get("part") == "hex":
        return render(request, "search/_hex.html", {"case": case, "trace": trace, **_hex_context(request, trace)})
    raw = next((entry for entry in trace.streams or [] if entry.get("name") == "raw"), None)
    properties = trace.properties or {}
    email = None
    if any("email" in kind for kind in trace.types or []):
        email = [(header, properties[f"email.{header}"]) for header in EMAIL_HEADERS if f"email.{header}" in properties]
    children = selectors.trace_children(trace=trace)
    context = {
        "case": case,
        "trace": trace,
        "groups": _property_groups(trace),
        "email": email,
        "text": (trace.text or "")[:TEXT_SHOWN],
        "text_truncated": len(trace.text or "") > TEXT_SHOWN,
        "picture": raw if _is_picture(trace, raw) else None,
        "parent": selectors.trace_parent(trace=trace),
        "children": list(children[:CHILDREN_SHOWN]),
        "children_total": children.count(),
        **_hex_context(request, trace),
    }
    return render(request, "search/trace.html", context)


@case_view(perms.SEARCH_TRACES)
def trace_thumbnail(request, case, trace_uid: str, stream: str):
    """A picture stream re-encoded as a small PNG; the original bytes are never served inline."""
    trace = _trace_of(request, case, trace_uid)
    add_details(view="thumbnail", stream=stream)
    try:
        png = trace_data.trace_thumbnail(trace=trace, stream=stream)
    except NotFound:
        raise  # no such stream: the 404 page
    except ServiceError as exc:  # a stream that is no picture: this page's own answer, not an error page
        return HttpResponse(exc.detail, status=415, content_type="text/plain; charset=utf-8")
    response = HttpResponse(png, content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# Collaboration (search/collaboration.py): a trace's tags and notes as a partial the trace page loads,
# bulk tagging and saved searches from the search page.


def _search_url(case, query: str) -> str:
    url = reverse("search:trace-search", args=[case.pk])
    return f"{url}?{urlencode({'q': query})}" if query else url


def _annotations_context(request, case, trace: Trace, error: str = "") -> dict:
    tags = selectors.trace_tags(trace=trace)
    return {
        "case": case,
        "trace": trace,
        "tags": tags,
        "suggested": [name for name in selectors.case_tag_suggestions(case=case) if name not in tags][:8],
        "notes": list(selectors.trace_notes(trace=trace)),
        "can_annotate": perms.ANNOTATE_TRACES in case_permissions(user=request.user, case=case),
        "error": error,
    }


@requires(perms.SEARCH_TRACES, post=perms.ANNOTATE_TRACES)  # POST checked below, once the trace is found
@case_view(perms.SEARCH_TRACES)
def trace_annotations(request, case, trace_uid: str):
    """The tag chips and notes of one trace (GET), and their changes (POST ``action`` = tag, untag, note)."""
    trace = _trace_of(request, case, trace_uid)
    error = ""
    if request.method == "POST":
        if perms.ANNOTATE_TRACES not in case_permissions(user=request.user, case=case):
            raise PermissionDenied("Your role in this case does not allow annotating traces.")
        common = {"actor": request.user, "case_id": case.pk, "uid": trace.uid}
        actions = {
            "tag": lambda: collaboration.tag_add(**common, tag=request.POST.get("tag", "")),
            "untag": lambda: collaboration.tag_remove(**common, tag=request.POST.get("tag", "")),
            "note": lambda: collaboration.note_add(**common, text=request.POST.get("text", "")),
        }
        action = actions.get(request.POST.get("action", ""))
        if action is None:
            return HttpResponse("Unknown action.", status=400, content_type="text/plain; charset=utf-8")
        try:
            action()
        except NotFound:
            raise  # no such trace: the 404 page
        except ServiceError as exc:  # shown next to the form in the partial
            error = exc.detail
        if not request.headers.get("HX-Request") and not error:
            return redirect(request.path)
    elif request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return render(request, "search/_tags_notes.html", _annotations_context(request, case, trace, error))


@require_POST
@case_view(perms.ANNOTATE_TRACES)
def trace_bulk_tag(request, case):
    """Tag the selected hits (``uids``), or every hit of the query (``all``), from the search page."""
    query = request.POST.get("q", "")
    if request.POST.get("all"):
        target = {"query": query}
    else:
        target = {"uids": request.POST.getlist("uids")}
        if not target["uids"]:
            messages.error(request, "Select the traces to tag first.")
            return redirect(_search_url(case, query))
    tag = request.POST.get("tag", "")
    result = run_service(
        request,
        lambda: collaboration.tags_bulk_add(actor=request.user, case_id=case.pk, tag=tag, **target),
        success=f"Tagged {tag.strip().lower()!r}.",
    )
    if result is not None:
        messages.info(request, f"{result['tagged']} trace(s) carry the tag; {result['added']} newly tagged.")
    return redirect(_search_url(case, query))


@require_POST
@case_view(perms.ANNOTATE_TRACES)
def saved_search_save(request, case):
    query = request.POST.get("q", "")
    name = request.POST.get("name", "")
    run_service(
        request,
        lambda: collaboration.saved_search_save(actor=request.user, case_id=case.pk, name=name, query=query),
        success="Search saved.",
    )
    return redirect(_search_url(case, query))


@require_POST
@case_view(perms.ANNOTATE_TRACES)
def saved_search_delete(request, case, saved_search_id: int):
    collaboration.saved_search_delete(actor=request.user, case_id=case.pk, saved_search_id=saved_search_id)
    return redirect(_search_url(case, request.POST.get("q", "")))
