"""Server-rendered pages of the search app: extraction runs (partials of the evidence page), trace search,
the trace page, tags, notes and saved searches. Thin: the same selectors and services as the API."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit.context import add_details
from audit.privacy import Tagged
from cases import permissions as perms
from cases.selectors import case_permissions
from cases.times import UNKNOWN_ZONE, format_property_time
from custodia.access import LOGGED_IN, requires
from custodia.errors import NotFound, ServiceError
from custodia.web import case_view, evidence_view, run_service
from search import collaboration, columns, completion, events, selectors, services
from search import data as trace_data
from search.backends.base import DEFAULT_DATE_PROPERTY, SORTS
from search.extraction.timezones import zone_note
from search.hashset_marks import query_hiding_known_files
from search.models import RunState, Trace
from search.query.ast import PROPERTY_NAME_RE, Field, Range, narrowed, narrowed_to_facet, property_name_error


@evidence_view()
def evidence_extractions(request, evidence):
    runs = list(selectors.extraction_runs(evidence=evidence)[:10])
    context = {
        "evidence": evidence,
        "runs": runs,
        "busy": any(run.state in (RunState.QUEUED, RunState.RUNNING) for run in runs),
        "counts": selectors.trace_counts(evidence=evidence),
        # "2 with tool errors" opens those traces (issue #20 item 8).
        "errors_url": reverse("search:trace-search", args=[evidence.case_id])
        + "?"
        + urlencode({"q": f"has:errors evidence:{evidence.pk}"}),
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
    dedupe = request.GET.get("dedupe") == "1"
    gallery = request.GET.get("view") == "gallery"
    size = _page_size(request.GET.get("size", ""))
    page_number = _page_number(request.GET.get("page", ""))
    facet_property = request.GET.get("facet", "")[:200]
    if not (PROPERTY_NAME_RE.fullmatch(facet_property) and "." in facet_property) or property_name_error(
        facet_property
    ):
        facet_property = ""
    # The URL holds the whole view (Back and Forward restore it exactly).
    # The "hide known files" switch: the query, less what a known-good hash set holds (NSRL's system files).
    hide_known = request.GET.get("hideKnown") == "1"
    state = {
        "q": query,
        "sort": sort,
        "columns": chosen_columns,
        "extra": ",".join(column.key for column in extra),
        "date": date_property,
        "exact": "1" if exact else "",
        "dedupe": "1" if dedupe else "",
        "view": "gallery" if gallery else "",
        "size": str(size) if size != DEFAULT_PAGE_SIZE else "",
        "facet": facet_property,
        "hideKnown": "1" if hide_known else "",
    }
    # The gallery shows the pictures among the hits.
    searched = (f"type:picture ({query})" if query.strip() else "type:picture") if gallery else query
    result, error = None, ""
    cursor = request.GET.get("cursor") or None
    try:
        result = selectors.traces_search(
            user=request.user,
            case_id=case.pk,
            query=query_hiding_known_files(searched) if hide_known else searched,
            facets=[*selectors.DEFAULT_FACETS, "date"],
            sort=sort,
            cursor=cursor or (selectors.cursor_for(offset=(page_number - 1) * size) if page_number > 1 else None),
            limit=size,
            date_property=date_property,
            exact=exact,
            dedupe=dedupe,
            facet_properties=[facet_property] if facet_property else None,
        )
    except ServiceError as exc:
        error = exc.detail
    add_details(query=Tagged("query", query[:2000]))
    facet_links = {}
    query_node = None
    column_set = chosen_columns or columns.DEFAULT_COLUMN_SET
    if result:
        # The search parsed this query already; the page reads its type and date clauses from the tree.
        query_node = selectors.query_parse(query)
        for name, entries in result["facets"].items():
            if name == "date":
                continue  # the timeline draws it
            if name.startswith("property:"):
                facet_links[name] = _property_facet_links(state, query_node, name.removeprefix("property:"), entries)
                continue
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
    shown = [
        *base_columns,
        *(column for column in extra if column.key not in {c.key for c in base_columns}),
        columns.TAGS,
    ]
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
                {"hit": hit, "cells": [(column.link, _cell_shown(hit, column), column.key) for column in shown]}
                for hit in result["hits"]
            ]
            if result
            else [],
            # A page swapped in by HTMX also replaces the box, so it shows the query of what is shown.
            "swap_query_box": bool(request.headers.get("HX-Request")),
            "next_url": _with(state, page=str(page_number + 1)) if result and result["cursor"] else "",
            "pages": _pages(state, result, page=page_number, size=size) if result else [],
            "page_number": page_number,
            "page_sizes": [(choice, choice == size) for choice in PAGE_SIZES],
            "gallery": gallery,
            "table_url": _with(state, view=""),
            "gallery_url": _with(state, view="gallery"),
            "events_url": reverse("search:events-timeline", args=[case.pk]) + _with({"q": query}),
            "warnings": [
                {**warning, "href": _with(state, q=_suggested(query, warning))}
                for warning in (result or {}).get("warnings", [])
            ],
            "facet_property": facet_property,
            "count_all_url": _with(state, exact="1"),
            # Collaboration: saved searches, bulk tagging and CSV export on the search page.
            # (Not on an HTMX swap of the results, which does not show them.)
            "saved_searches": [] if request.headers.get("HX-Request") else list(selectors.saved_searches(case=case)),
            "can_annotate": perms.ANNOTATE_TRACES in case_permissions(user=request.user, case=case),
        },
    )


PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_NUMBER = 10_000


def _page_size(text: str) -> int:
    return int(text) if text.isdigit() and int(text) in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _page_number(text: str) -> int:
    return min(int(text), MAX_PAGE_NUMBER) if text.isdigit() and 0 < int(text) < 10**9 else 1


def _pages(state: dict, result: dict, *, page: int, size: int) -> list[dict]:
    """Numbered links: the first, two either side of this page, and the last when the count is exact."""
    known = max(1, -(-result["total"] // size))
    last = known if result["exact"] else max(known, page + (1 if result["cursor"] else 0))
    numbers = sorted({1, *range(max(1, page - 2), min(last, page + 2) + 1), *([last] if result["exact"] else [])})
    links, previous = [], 0
    for number in numbers:
        if number - previous > 1:
            links.append({"gap": True})
        links.append({"number": number, "href": _with(state, page=str(number)), "current": number == page})
        previous = number
    return links


def _suggested(query: str, warning: dict) -> str:
    """The query with the property name of a warning replaced by its suggestion (where it names a property)."""
    if not warning.get("suggestion"):
        return query
    import re

    pattern = re.compile(r"(?<![\w.])" + re.escape(warning["property"]) + r"(?=[:=<>])")
    return pattern.sub(warning["suggestion"], query)


def _property_facet_links(state: dict, node, name: str, entries: list[dict]) -> list[dict]:
    """A property facet's entries as links that narrow the query: a value, a range of numbers, a year."""
    from datetime import date

    links = []
    for entry in entries:
        if "from" in entry:
            last = entry is entries[-1]
            clause = Range(name, entry["from"], entry["to"], True, last)
            label = f"{entry['from']:g} to {entry['to']:g}"
        elif len(str(entry["value"])) == 4 and str(entry["value"]).isdigit():
            year = int(entry["value"])
            clause = Range(name, date(year, 1, 1), date(year, 12, 31))
            label = str(year)
        else:
            clause = Field(name, str(entry["value"]), op="=", phrase=True)
            label = str(entry["value"])
        if not entry["count"]:
            continue
        links.append({"value": label, "count": entry["count"], "href": _with(state, q=narrowed(node, clause), page="")})
    return links


def _with(state: dict, **changes) -> str:
    """A link to the search page with ``changes`` applied to its current parameters."""
    return "?" + urlencode({key: value for key, value in {**state, **changes}.items() if value}, doseq=True)


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
def events_timeline(request, case):
    """The events timeline (supertimeline) of the hits of a query: time, zone, kind, trace, evidence."""
    query = request.GET.get("q", "")
    chosen_kinds = [kind[:60] for kind in request.GET.getlist("kind")[:20]]
    state = {
        "q": query,
        "start": request.GET.get("start", "")[:40],
        "end": request.GET.get("end", "")[:40],
        "kind": chosen_kinds,
        "order": "desc" if request.GET.get("order") == "desc" else "",
    }
    try:
        limit = min(max(int(request.GET.get("limit") or 100), 1), events.MAX_EVENTS_LIMIT)
    except ValueError:
        limit = 100
    add_details(query=Tagged("query", query[:2000]))
    result, error = None, ""
    try:
        result = events.events_search(
            user=request.user,
            case_id=case.pk,
            query=query,
            start=state["start"] or None,
            end=state["end"] or None,
            kinds=chosen_kinds or None,
            descending=bool(state["order"]),
            limit=limit,
            cursor=request.GET.get("cursor") or None,
        )
    except ServiceError as exc:
        error = exc.detail
    link_state = {**state, "limit": str(limit) if limit != 100 else ""}
    return render(
        request,
        "search/events.html",
        {
            "case": case,
            "state": state,
            "result": result,
            "error": error,
            "kinds": list(events.event_kinds(case_id=case.pk)),
            "next_url": _with(link_state, cursor=result["cursor"]) if result and result["cursor"] else "",
            "export_query": urlencode(
                {key: value for key, value in state.items() if value and key != "order"}, doseq=True
            ),
            "search_url": _with({"q": query}),
        },
    )


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


def _cell_shown(hit: dict, column: columns.Column):
    """A result cell as the table shows it: a time property in the reader's zone (or as recorded, marked
    ``local (zone unknown)``), anything else as ``columns.cell`` gives it."""
    if column.is_property and not column.link:
        shown = format_property_time(hit.get("properties") or {}, column.key)
        if shown is not None:
            return shown
    return columns.cell(hit, column)


def _trace_of(request, case, trace_uid: str) -> Trace:
    return selectors.trace_get(user=request.user, case_id=case.pk, uid=trace_uid)


def _property_groups(trace: Trace) -> list[dict]:
    """Properties grouped by type prefix (``email.from`` → ``email``), each group with the tool that made it."""
    groups: dict[str, dict] = {}
    for key in sorted(trace.properties or {}):
        prefix = key.split(".", 1)[0]
        tool = (trace.tools or {}).get(prefix) or []
        group = groups.setdefault(prefix, {"type": prefix, "tool": " ".join(str(part) for part in tool), "rows": []})
        # A local time of unknown zone says so (it has no Z); a converted one names its zone (#18).
        zone = zone_note(trace.properties, key)
        # Beside the value as stored, the instant in the reader's zone; a local time of unknown zone already
        # says so and is never converted (issue #20 item 13).
        shown = format_property_time(trace.properties, key)
        if shown and shown.endswith(UNKNOWN_ZONE):
            shown = None
        group["rows"].append(
            {
                "name": key,
                "value": trace.properties[key],
                "zone": zone,
                # Written as every page writes it, without brackets: "2022-01-15T09:30:00 local (zone unknown)".
                "zone_unknown": zone == UNKNOWN_ZONE,
                "shown": shown,
            }
        )
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


THUMBNAIL_CACHE_SECONDS = 24 * 3600


@case_view(perms.SEARCH_TRACES)
def trace_thumbnail(request, case, trace_uid: str, stream: str):
    """A picture stream re-encoded as a small PNG; the original bytes are never served inline."""
    trace = _trace_of(request, case, trace_uid)
    add_details(view="thumbnail", stream=stream)
    # Cached by the stream's content hash: the gallery asks for many, and the same picture recurs.
    entry = next((item for item in trace.streams or [] if item.get("name") == stream), None) or {}
    content_hash = str(entry.get("sha256") or "")
    etag = f'"{content_hash}"' if content_hash else ""
    if etag and request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag})
    cache_key = f"custodia:thumbnail:{content_hash}" if content_hash else ""
    try:
        png = (cache.get(cache_key) if cache_key else None) or trace_data.trace_thumbnail(trace=trace, stream=stream)
    except NotFound:
        raise  # no such stream: the 404 page
    except ServiceError as exc:  # a stream that is no picture: this page's own answer, not an error page
        return HttpResponse(exc.detail, status=415, content_type="text/plain; charset=utf-8")
    if cache_key:
        cache.set(cache_key, png, THUMBNAIL_CACHE_SECONDS)
    response = HttpResponse(png, content_type="image/png")
    if etag:
        response["ETag"] = etag
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
