"""Issue #20 items 4, 7, 8 and 9 over the API and on the page: facets and values on any property,
de-duplication by content hash, searches that say what went wrong, has:errors, the result table's tags,
page numbers and sortable e-mail and picture columns, and the picture gallery's safe thumbnails."""

from __future__ import annotations

import io
import re
import struct
import zlib
from html import unescape
from urllib.parse import parse_qsl

import pytest

from search.backends.base import SORTS
from search.backends.elasticsearch.compiler import compile_query, sort_clauses
from search.data import thumbnail_png
from search.models import Trace, TraceTag
from search.query import parse_query
from tests.search.synthetic import synthetic_traces

SAME = "a" * 64
TRACES = [
    # name, types, properties, sha256, has_errors
    ("IMG_1.jpg", ["file", "picture"],
     {"file.size": 100, "picture.exif.Make": "Canon", "picture.width": 4000, "file.modifiedOn": "2019-05-01T10:00:00Z"},
     SAME, False),
    ("IMG_1 copy.jpg", ["file", "picture"],
     {"file.size": 100, "picture.exif.Make": "Canon", "picture.width": 4000, "file.modifiedOn": "2020-05-01T10:00:00Z"},
     SAME, False),
    ("IMG_2.jpg", ["file", "picture"],
     {"file.size": 1000, "picture.exif.Make": "Nikon", "picture.width": 1024,
      "file.modifiedOn": "2020-06-01T10:00:00Z"},
     "b" * 64, True),
    ("Zebra", ["email"], {"email.subject": "Zebra", "email.from": "zoe@example.org",
                          "email.to": ["bob@example.org", "carol@example.org"]}, "", False),
    ("Apple", ["email"], {"email.subject": "Apple", "email.from": "adam@example.org", "email.to": ["bob@example.org"]},
     "", True),
]  # fmt: skip


@pytest.fixture
def traces(demo):
    evidence = synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {
                "name": name,
                "path": f"/disk/{name}",
                "types": types,
                "properties": properties,
                "sha256": sha256,
                "has_errors": errors,
            }
            for name, types, properties, sha256, errors in TRACES
        ],
    )
    TraceTag.objects.create(
        trace=Trace.objects.get(name="IMG_2.jpg"), case=demo.case, name="csam?", created_by=demo.detective
    )
    return evidence


def search(api, demo, **body):
    api.as_user(demo.detective)
    return api.post(f"/api/cases/{demo.case.pk}/traces/search", body, format="json")


def names(body) -> list[str]:
    return [hit["name"] for hit in body["hits"]]


# --- item 8: searches that say what went wrong ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "column"),
    [("file.size>abc", 11), ("file.size>>", 11), ("type:file file.modifiedOn<soon", 27), ("data.raw.size>=big", 16)],
)
def test_a_number_or_date_compared_with_a_word_is_a_400_naming_the_column(demo, api, traces, query, column):
    response = search(api, demo, query=query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "query_syntax" and body["column"] == column
    assert f"at column {column}" in body["detail"]


def test_a_property_no_trace_has_is_a_warning_with_a_suggestion(demo, api, traces):
    body = search(api, demo, query="picture.exif.make:canon").json()
    assert body["total"] == 0
    [warning] = body["warnings"]
    assert warning["property"] == "picture.exif.make" and warning["suggestion"] == "picture.exif.Make"
    assert "Did you mean picture.exif.Make?" in warning["message"]
    assert search(api, demo, query="picture.exif.Make:canon").json()["warnings"] == []
    [unknown] = search(api, demo, query="nothing.like.this:1").json()["warnings"]
    assert unknown["suggestion"] == "" and "No trace of this case has" in unknown["message"]


def test_has_errors_finds_the_traces_tools_failed_on(demo, api, traces):
    assert sorted(names(search(api, demo, query="has:errors").json())) == ["Apple", "IMG_2.jpg"]
    assert names(search(api, demo, query="has:errors type:picture").json()) == ["IMG_2.jpg"]
    assert search(api, demo, query="has:warnings").status_code == 400


def test_the_evidence_page_links_its_tool_errors(demo, client, traces):
    client.force_login(demo.detective)
    html = client.get(f"/evidence/{traces.pk}/extractions/").content.decode()
    link = re.search(r'<a href="([^"]+)">2 with tool errors</a>', html)
    assert link, html
    found = client.get(unescape(link.group(1))).content.decode()
    assert "<strong>2</strong> traces" in found


# --- item 7: facets and values on any property, de-duplication ---------------------------------------------


def test_facets_on_any_property_terms_number_ranges_and_years(demo, api, traces):
    body = search(
        api, demo, query="type:picture", facet_properties=["picture.exif.Make", "file.size", "file.modifiedOn"]
    ).json()
    assert body["facets"]["property:picture.exif.Make"] == [
        {"value": "Canon", "count": 2},
        {"value": "Nikon", "count": 1},
    ]
    sizes = body["facets"]["property:file.size"]
    assert sizes[0] == {"from": 100, "to": 190, "count": 2} and sizes[-1]["to"] == 1000 and sizes[-1]["count"] == 1
    assert body["facets"]["property:file.modifiedOn"] == [
        {"value": "2019", "count": 1},
        {"value": "2020", "count": 2},
    ]
    assert search(api, demo, facet_properties=["no__good"]).status_code == 400


def test_unique_values_of_a_property_count_each_element_of_a_list(demo, api, traces):
    api.as_user(demo.detective)
    response = api.post(
        f"/api/cases/{demo.case.pk}/traces/values", {"query": "type:email", "property": "email.to"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["values"] == [
        {"value": "bob@example.org", "count": 2},
        {"value": "carol@example.org", "count": 1},
    ]
    bad = api.post(f"/api/cases/{demo.case.pk}/traces/values", {"property": "x", "limit": 5}, format="json")
    assert bad.status_code == 400


def test_dedupe_keeps_one_hit_per_content_hash(demo, api, traces):
    assert search(api, demo, query="type:picture").json()["total"] == 3
    body = search(api, demo, query="type:picture", dedupe=True).json()
    assert body["total"] == 2 and names(body) == ["IMG_1.jpg", "IMG_2.jpg"]
    # Traces without content all stay.
    assert search(api, demo, query="", dedupe=True).json()["total"] == 4


# --- item 9: the result table --------------------------------------------------------------------------------


def test_hits_carry_their_tags_and_email_and_picture_columns_sort(demo, api, traces):
    body = search(api, demo, query="type:picture", sort="-width").json()
    assert names(body)[-1] == "IMG_2.jpg" and body["hits"][-1]["tags"] == ["csam?"]
    assert names(search(api, demo, query="type:email", sort="subject").json()) == ["Apple", "Zebra"]
    assert names(search(api, demo, query="type:email", sort="-from").json()) == ["Zebra", "Apple"]


def page(client, demo, **params) -> str:
    client.force_login(demo.detective)
    response = client.get(f"/cases/{demo.case.pk}/traces/", params)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_the_page_has_page_numbers_a_page_size_and_a_tags_column(demo, client, traces):
    html = page(client, demo, q="", size="25")
    assert '<option value="25" selected>' in html
    first = page(client, demo, q="type:picture", size="25", sort="name")
    assert 'aria-current="page">1</a>' in first and '<span class="tag-chip small">csam?</span>' in first
    assert 'href="#results-table"' in first and 'id="results-table"' in first
    assert "js/search.js" in first


def test_the_page_warns_and_links_the_suggested_query(demo, client, traces):
    html = page(client, demo, q="picture.exif.make:canon")
    assert "Did you mean picture.exif.Make?" in html
    link = unescape(re.search(r'<a href="([^"]+)"[^>]*>Search picture.exif.Make instead</a>', html).group(1))
    assert "q=picture.exif.Make%3Acanon" in link


def test_a_property_facet_on_the_page_narrows_by_its_values(demo, client, traces):
    html = page(client, demo, q="type:picture", facet="picture.exif.Make")
    link = re.search(r'<a href="([^"]+)"[^>]*>Nikon</a>', html)
    assert link
    narrowed = page(client, demo, **dict(parse_qsl(unescape(link.group(1)).removeprefix("?"))))
    assert "<strong>1</strong> trace" in narrowed and "IMG_2.jpg" in narrowed


# --- item 4: the gallery ---------------------------------------------------------------------------------------


def test_the_gallery_shows_the_pictures_among_the_hits_as_lazy_thumbnails(demo, client, traces):
    html = page(client, demo, q="", view="gallery")
    tiles = re.findall(r'<img src="([^"]+)" loading="lazy"', html)
    assert len(tiles) == 3 and all(src.endswith("/thumbnail/raw.png") for src in tiles)
    assert "Zebra" not in html.split('class="gallery"')[1]
    assert 'name="uids"' in html  # select several, then tag


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_not_decoded():
    from custodia.errors import ServiceError

    # Past our own limit: refused before a pixel is decoded; far past it, Pillow's bomb check says so too.
    with pytest.raises(ServiceError) as refused:
        thumbnail_png(data=_png(9_000, 9_000))
    assert refused.value.status_code == 413
    with pytest.raises(ServiceError) as refused:
        thumbnail_png(data=_png(50_000, 50_000))
    assert "decompression bomb" in refused.value.detail


def test_a_real_picture_becomes_a_small_png():
    from PIL import Image

    source = io.BytesIO()
    Image.new("RGB", (800, 600), "red").save(source, format="JPEG")
    png = thumbnail_png(data=source.getvalue())
    with Image.open(io.BytesIO(png)) as thumbnail:
        assert thumbnail.format == "PNG" and max(thumbnail.size) <= 256


# --- the Elasticsearch compiler -------------------------------------------------------------------------------


def test_elasticsearch_compiles_has_errors_and_the_new_sorts():
    assert compile_query(parse_query("has:errors")).to_dict() == {"term": {"has_errors": True}}
    for key in ("subject", "-sentOn", "width", "takenOn"):
        clauses = sort_clauses(SORTS[key])
        assert "properties." in next(iter(clauses[0])), clauses
