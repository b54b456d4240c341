"""The search page's timeline: the date histogram of the hits as an inline SVG bar chart, drawn here.

Buckets are years, months, days or hours of UTC (the backends count the times as extraction wrote them);
each bar's tooltip and the axis also give them in the reader's time zone, named (issue #20 item 13).

Each bar links to the same search narrowed to its bucket (``file.modifiedOn:[2019-03-01 TO 2019-03-31]``,
replacing an earlier range on that property), so the next histogram is finer: a click zooms in.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils import timezone

from cases.times import format_time
from search.query.ast import Node, Range, narrowed

register = template.Library()

CHART_HEIGHT = 80
BAR_WIDTH = 10  # in viewBox units; the chart stretches to the page's width
BAR_GAP = 2
# Fewer bars than this stand in the middle at this width, rather than stretched across the page.
MIN_SLOTS = 24
# Empty buckets between two full ones are drawn as gaps; more than this many and the gaps are left out.
MAX_FILLED_BUCKETS = 500


def bucket_start(value: str, interval: str) -> date | datetime:
    if interval == "hour":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return date.fromisoformat(value[:10])


def next_bucket(start: date | datetime, interval: str) -> date | datetime:
    if interval == "hour":
        return start + timedelta(hours=1)
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


def bucket_range(*, date_property: str, value: str, interval: str) -> Range:
    """The range clause that selects one bucket: whole days up to its last day, or one hour."""
    start = bucket_start(value, interval)
    if interval == "hour":
        # Moments compare to the second; the next hour, excluded, leaves none of this hour out.
        return Range(date_property, start, next_bucket(start, interval), include_high=False)
    if interval == "day":
        last = start
    elif interval == "month":
        last = date(start.year, start.month, calendar.monthrange(start.year, start.month)[1])
    else:
        last = date(start.year, 12, 31)
    return Range(date_property, start, last)


def zoomed_query(*, node: Node | None, clause: Range) -> str:
    """The query with ``clause`` ANDed in, in place of an earlier range on the same property."""
    return narrowed(node, clause, replacing=lambda item: isinstance(item, Range) and item.name == clause.name)


def bucket_label(value: str, interval: str) -> str:
    """The bucket as the histogram counts it: a year, month, day or hour of UTC (the clock extraction writes
    times on), named so."""
    start = bucket_start(value, interval)
    if interval == "year":
        return f"{start:%Y} UTC"
    if interval == "month":
        return f"{start:%b %Y} UTC"
    if interval == "day":
        return f"{start.isoformat()} UTC"
    return f"{start:%Y-%m-%d %H}:00 UTC"


def bucket_instant(start: date | datetime) -> datetime:
    """A bucket's boundary as an instant (a day's starts at midnight UTC)."""
    if isinstance(start, datetime):
        return start
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def bucket_span(value: str, interval: str) -> tuple[datetime, datetime]:
    """The instants a bucket runs from (included) and until (excluded)."""
    start = bucket_start(value, interval)
    return bucket_instant(start), bucket_instant(next_bucket(start, interval))


def reader_is_on_utc(moment: datetime) -> bool:
    offset = timezone.localtime(moment).utcoffset()
    return offset is None or offset == timedelta(0)


def bucket_title(value: str, interval: str) -> str:
    """A bar's tooltip before its count: the UTC bucket and, for a reader whose zone is not UTC then, the
    same span in the reader's zone, named (``Mar 2019 UTC, 2019-03-01 05:30:00 IST to 2019-04-01 05:30:00
    IST``)."""
    label = bucket_label(value, interval)
    start, until = bucket_span(value, interval)
    if reader_is_on_utc(start) and reader_is_on_utc(until):
        return label
    return f"{label}, {format_time(start)} to {format_time(until)}"


def _filled(buckets: list[dict], interval: str) -> list[dict]:
    """The buckets with the empty ones between them, so the bars stand where their time is."""
    if len(buckets) < 2:
        return buckets
    counts = {bucket_start(entry["value"], interval): entry["count"] for entry in buckets}
    first, last = min(counts), max(counts)
    filled, current = [], first
    while current <= last:
        if len(filled) > MAX_FILLED_BUCKETS:
            return buckets
        value = current.strftime("%Y-%m-%dT%H:00") if interval == "hour" else current.isoformat()
        filled.append({"value": value, "count": counts.get(current, 0)})
        current = next_bucket(current, interval)
    return filled


def timeline_bars(*, buckets: list[dict], interval: str, date_property: str, node: Node | None, state: dict) -> dict:
    """Geometry, labels and zoom links of the bars (``state``: the page's other query parameters)."""
    filled = _filled(buckets, interval)
    peak = max((entry["count"] for entry in filled), default=0)
    step = BAR_WIDTH + BAR_GAP
    slots = max(len(filled), MIN_SLOTS)
    offset = (slots - len(filled)) // 2 * step
    view_width = slots * step - BAR_GAP
    bars = []
    for index, entry in enumerate(filled):
        count = entry["count"]
        height = max(round(CHART_HEIGHT * count / peak), 2) if count else 0
        bar = {
            "x": offset + index * step,
            "y": CHART_HEIGHT - height,
            "width": BAR_WIDTH,
            "height": height,
            "count": count,
            "label": bucket_title(entry["value"], interval),
            "href": "",
        }
        if count:
            query = zoomed_query(
                node=node, clause=bucket_range(date_property=date_property, value=entry["value"], interval=interval)
            )
            bar["href"] = "?" + urlencode({key: value for key, value in {**state, "q": query}.items() if value})
        bars.append(bar)
    # The axis: where the first bar starts and the last one ends, in the reader's zone with its name.
    first = bucket_span(filled[0]["value"], interval)[0] if filled else None
    last = bucket_span(filled[-1]["value"], interval)[1] if filled else None
    return {
        "bars": bars,
        "peak": peak,
        "view_width": view_width,
        "height": CHART_HEIGHT,
        "first": format_time(first) if first else "",
        "last": format_time(last) if last else "",
        "first_iso": first.isoformat() if first else "",
        "last_iso": last.isoformat() if last else "",
        "zone": timezone.get_current_timezone_name(),
        # The reader's clock agrees with UTC over the whole chart: no second clock to give.
        "reader_on_utc": first is None or (reader_is_on_utc(first) and reader_is_on_utc(last or first)),
    }


@register.inclusion_tag("search/_timeline.html", takes_context=True)
def timeline(context):
    """``{% timeline %}`` on the search page: the chart of ``result.facets.date``, or a line saying why not."""
    result = context.get("result") or {}
    interval = result.get("date_interval") or ""
    buckets = (result.get("facets") or {}).get("date") or []
    chart = (
        timeline_bars(
            buckets=buckets,
            interval=interval,
            date_property=context["date_property"],
            node=context.get("query_node"),
            state=context["state"],
        )
        if buckets and interval
        else None
    )
    return {
        "chart": chart,
        "state": context["state"],
        "search_url": reverse("search:trace-search", args=[context["case"].pk]),
        "interval": interval,
        "date_property": context["date_property"],
        "date_properties": context["date_properties"],
        "total": result.get("total", 0),
        "sampled": result.get("facets_sampled", False),
        "local_unknown": result.get("date_local_unknown", 0),
    }
