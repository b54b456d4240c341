"""The detective's search page: timeline, sortable column sets, completion and syntax help (issue #5)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from audit.models import AuditEvent
from search.models import Trace, TraceTag
from tests.search.synthetic import synthetic_traces

TRACES = [
    # name, types, properties
    ("old.doc", ["file"], {"file.size": 300, "file.modifiedOn": "2005-06-01T12:00:00Z"}),
    ("notes.txt", ["file"], {"file.size": 120, "file.modifiedOn": "2018-05-02T08:00:00Z"}),
    ("budget.xlsx", ["file"], {"file.size": 9_000, "file.modifiedOn": "2019-03-07T10:00:00Z"}),
    ("plan.docx", ["file"], {"file.size": 4_000, "file.modifiedOn": "2019-03-20T16:30:00Z"}),
    ("minutes.pdf", ["file"], {"file.size": 50_000, "file.modifiedOn": "2019-11-30T23:00:00Z"}),
    (
        "holiday.jpg",
        ["file", "picture"],
        {
            "file.size": 2_000_000,
            "file.modifiedOn": "2020-07-01T12:00:00Z",
            "picture.width": 4000,
            "picture.height": 3000,
        },
    ),
    (
        "beach.png",
        ["file", "picture"],
        {"file.size": 800_000, "file.modifiedOn": "2020-07-04T09:00:00Z", "picture.width": 1024, "picture.height": 768},
    ),
    (
        "Quarterly report",
        ["email"],
        {
            "email.from": "alice@example.org",
            "email.to": ["bob@example.org", "carol@example.org"],
            "email.subject": "Quarterly report Q3",
            "email.sentOn": "2019-10-01T09:00:00Z",
        },
    ),
]


@pytest.fixture
def traces(demo):
    evidence = synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {"name": name, "path": f"/disk/{name}", "types": types, "properties": properties}
            for name, types, properties in TRACES
        ],
    )
    for name in ("holiday.jpg", "beach.png"):
        TraceTag.objects.create(
            trace=Trace.objects.get(name=name), case=demo.case, name="to check", created_by=demo.detective
        )
    TraceTag.objects.create(
        trace=Trace.objects.get(name="notes.txt"), case=demo.case, name="relevant", created_by=demo.detective
    )
    return evidence


def page(client, demo, **params) -> str:
    client.force_login(demo.detective)
    response = client.get(f"/cases/{demo.case.pk}/traces/", params)
    assert response.status_code == 200, response.content
    return response.content.decode()


def total(html: str) -> int:
    return int(re.search(r"<strong>(\d+)</strong> trace", html).group(1))


def bar_links(html: str) -> list[tuple[str, str]]:
    """(href, title) of every timeline bar."""
    return [
        (unescape(href), unescape(title))
        for href, title in re.findall(
            r'<a href="([^"]+)" class="timeline-bar"[^>]*><rect[^>]*><title>([^<]+)</title>', html
        )
    ]


def test_the_timeline_draws_a_bar_per_bucket_with_its_count(demo, client, traces):
    html = page(client, demo, q="")
    assert "<svg" in html and "by year" in html
    titles = [title for _, title in bar_links(html)]
    # 2005 to 2020 is too long for months: one bar a year, the empty years as gaps.
    assert titles == ["2005 UTC: 1 trace", "2018 UTC: 1 trace", "2019 UTC: 3 traces", "2020 UTC: 2 traces"]
    assert html.count("<rect") == 4 and 'viewBox="0 0 286 80"' in html  # 16 years in the middle of 24 slots
    assert '<rect x="48" ' in html and '<rect x="228" ' in html  # 2005 and 2020, 15 years apart


def test_a_bar_zooms_to_its_range_and_the_next_histogram_is_finer(demo, client, traces):
    html = page(client, demo, q="type:file")
    href = dict((title, href) for href, title in bar_links(html))["2019 UTC: 3 traces"]
    query = parse_qs(urlsplit(href).query)["q"][0]
    assert query == "type:file file.modifiedOn:[2019-01-01 TO 2019-12-31]"
    zoomed = page(client, demo, q=query)
    assert total(zoomed) == 3
    assert "by month" in zoomed
    month_href = dict((title, href) for href, title in bar_links(zoomed))["Mar 2019 UTC: 2 traces"]
    finer = parse_qs(urlsplit(month_href).query)["q"][0]
    # The month replaces the year: one range on the property, not two.
    assert finer == "type:file file.modifiedOn:[2019-03-01 TO 2019-03-31]"
    assert total(page(client, demo, q=finer)) == 2


def test_empty_buckets_between_bars_are_gaps_not_links(demo, client, traces):
    html = page(client, demo, q="file.modifiedOn:[2019-01-01 TO 2019-12-31]")
    titles = [title for _, title in bar_links(html)]
    assert titles == ["Mar 2019 UTC: 2 traces", "Nov 2019 UTC: 1 trace"]
    # March to November: nine months wide, the empty ones drawn as nothing to click.
    assert html.count("<rect") == 2
    assert '<rect x="84" ' in html and '<rect x="180" ' in html  # eight months apart


def test_the_timeline_follows_the_chosen_date_property(demo, client, traces):
    html = page(client, demo, q="", date="email.sentOn")
    assert [title for _, title in bar_links(html)] == ["2019-10-01 09:00 UTC: 1 trace"]
    href = bar_links(html)[0][0]
    params = parse_qs(urlsplit(href).query)
    assert params["date"] == ["email.sentOn"]
    assert params["q"] == ["email.sentOn:[2019-10-01T09:00:00+00:00 TO 2019-10-01T10:00:00+00:00}"]
    assert total(page(client, demo, q=params["q"][0])) == 1
    assert '<option value="email.sentOn" selected>' in html


def test_a_date_property_that_is_no_property_name_falls_back_to_the_default(demo, client, traces):
    html = page(client, demo, q="", date="1; drop")
    assert '<option value="file.modifiedOn" selected>' in html and "alert" not in html


def test_hits_without_the_date_say_so(demo, client, traces):
    html = page(client, demo, q="type:email")
    assert "None of these hits has a file.modifiedOn date." in html


def headers(html: str) -> list[str]:
    head = re.search(r'<table class="table data results".*?<thead>(.*?)</thead>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>|[▲▼]", "", cell).strip() for cell in re.findall(r"<th[^>]*>(.*?)</th>", head)][1:]


def test_the_default_columns_and_sort_links(demo, client, traces):
    html = page(client, demo, q="")
    assert headers(html) == ["Name", "Path", "Size", "Modified", "Types", "Tags"]
    assert "?sort=size&amp;date=file.modifiedOn" in html
    by_size = page(client, demo, q="", sort="-size")
    names = re.findall(r'/traces/[^/"]+/">([^<]+)</a>', by_size)
    assert names[:3] == ["holiday.jpg", "beach.png", "minutes.pdf"]
    assert 'aria-sort="descending"' in by_size
    assert "?sort=size&amp;date=file.modifiedOn" in by_size  # clicking again sorts ascending


def test_a_picture_query_shows_the_picture_columns(demo, client, traces):
    html = page(client, demo, q="type:picture")
    assert headers(html) == ["Name", "Size", "Width", "Height", "Taken", "Tags"]
    assert "<td>4000</td>" in html and "<td>768</td>" in html
    assert 'data-column-set="picture"' in html


def test_an_email_facet_shows_the_email_columns_with_every_recipient(demo, client, traces):
    html = page(client, demo, q="quarterly")  # narrowed by its hits, not by a type: clause
    assert headers(html) == ["From", "To", "Subject", "Sent", "Tags"]
    assert "bob@example.org, carol@example.org" in html
    assert ">Quarterly report Q3</a>" in html


def test_a_chosen_column_set_wins_over_the_type(demo, client, traces):
    html = page(client, demo, q="type:picture", columns="default")
    assert headers(html) == ["Name", "Path", "Size", "Modified", "Types", "Tags"]
    assert '<option value="default" selected>' in html


def test_extra_columns_add_properties_and_travel_with_the_links(demo, client, traces):
    html = page(client, demo, q="type:picture", extra="picture.height, file.mimeType,not a name")
    # picture.height is in the set already: shown once.
    assert headers(html) == ["Name", "Size", "Width", "Height", "Taken", "file.mimeType", "Tags"]
    assert 'value="picture.height,file.mimeType"' in html
    assert "extra=picture.height%2Cfile.mimeType" in html  # in the sort, zoom and facet links


def test_syntax_help_is_next_to_the_box_and_links_the_guide(demo, client, traces):
    html = page(client, demo, q="")
    assert '<details class="syntax-help">' in html and "file.modifiedOn:[2020-01-01 TO 2020-12-31]" in html
    guide = client.get("/search/help/")
    assert guide.status_code == 200 and "Searching traces: the query language" in guide.content.decode()


def completions(client, demo, user=None, **params):
    client.force_login(user or demo.detective)
    return client.get(f"/cases/{demo.case.pk}/search/complete", params)


def options(response) -> list[str]:
    return [unescape(value) for value in re.findall(r'<option value="([^"]*)"', response.content.decode())]


def test_completion_offers_property_names_of_the_case(demo, client, traces):
    assert options(completions(client, demo, prefix="picture.")) == ["picture.height", "picture.width"]
    assert options(completions(client, demo, prefix="sent")) == ["email.sentOn"]  # a later part of the name
    assert "file.modifiedOn" in options(completions(client, demo, prefix="file"))


def test_completion_offers_fields_and_tags(demo, client, traces):
    assert options(completions(client, demo, prefix="ty")) == ["type:"]
    assert options(completions(client, demo, prefix="tag:")) == ['tag:"to check"', "tag:relevant"]
    assert options(completions(client, demo, prefix="-tag:r")) == ["-tag:relevant"]
    assert options(completions(client, demo, prefix="rel")) == ["tag:relevant"]
    assert options(completions(client, demo, prefix="t")) == ["type:", "tag:", "text:", 'tag:"to check"', "email.to"]


def test_completion_keeps_the_rest_of_the_box(demo, client, traces):
    assert options(completions(client, demo, q="holiday email.su")) == ["holiday email.subject"]


def test_completion_is_audited(demo, client, traces):
    completions(client, demo, prefix="pic")
    event = AuditEvent.objects.filter(action="trace-complete.access", actor="detective").last()
    assert event is not None and event.case_id == demo.case.pk and event.details["prefix"] == "pic"


@pytest.mark.parametrize(("caller", "status"), [("outsider", 404), ("custodian", 403), ("prosecutor", 200)])
def test_who_may_complete(demo, client, traces, caller, status):
    response = completions(client, demo, user=demo.users[caller], prefix="")
    assert response.status_code == status
    if status != 200:
        assert b"picture.width" not in response.content and b"relevant" not in response.content


def test_completion_over_the_api(demo, api, traces):
    api.as_user(demo.detective)
    body = api.get(f"/api/cases/{demo.case.pk}/traces/complete", {"prefix": "tag:to"}).json()
    assert body == {"prefix": "tag:to", "completions": [{"value": 'tag:"to check"', "kind": "tag"}]}
    api.as_user(demo.outsider)
    response = api.get(f"/api/cases/{demo.case.pk}/traces/complete", {"prefix": "picture"})
    assert response.status_code == 404 and "completions" not in response.json()


@pytest.mark.parametrize(
    ("facet", "value", "clause"),
    [
        ("extension", "foo)", r"name:*.foo\)"),
        ("mimeType", 'text/x"c', r'file.mimeType="text/x\"c"'),
        ("deleted", True, "deleted:true"),
        ("type", "email", "type:email"),
    ],
)
def test_a_facet_link_is_a_query_that_parses_whatever_the_value(facet, value, clause):
    from search.query import parse_query
    from search.query.ast import narrowed_to_facet

    refined = narrowed_to_facet(parse_query("peter OR paul"), facet=facet, value=value)
    assert refined == f"(peter OR paul) {clause}"
    parse_query(refined)


def test_past_the_count_limit_the_page_says_more_than_and_counts_all_on_request(demo, client, settings):
    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 10
    synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {
                "name": f"memo {n}.txt",
                "path": f"/disk/memo {n}.txt",
                "types": ["file"],
                "properties": {"file.modifiedOn": f"2019-{n % 12 + 1:02d}-01T10:00:00Z"},
            }
            for n in range(60)
        ],
    )
    # A page holds 50 hits: counting stops at the end of the page, the larger of the two.
    html = page(client, demo, q="memo")
    assert "More than <strong>50</strong> traces; the facets and the timeline count the first 50." in html
    assert "of the first 50 hits" in html
    assert "Tag all hits" in html
    count_all = unescape(re.search(r'<a href="([^"]+)"[^>]*>Count all</a>', html).group(1))
    assert "exact=1" in count_all
    html = page(client, demo, **dict(parse_qsl(count_all.removeprefix("?"))))
    assert total(html) == 60 and "Count all" not in html and "first 50" not in html
    assert "Tag all 60 hits" in html
    # A facet link, a sort, a timeline bar keep counting everything.
    assert all("exact=1" in href for href, _ in bar_links(html))
