"""Issue #20 item 3: the folder tree of an evidence item over the API and as page partials: levels load
one at a time with counts, deleted entries are marked, a folder lists like a file manager, and its
query (``uid:<folder>-*``) narrows the search to what is below it."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from evidence.models import Evidence
from search.models import ExtractionRun, Trace
from tests.search.test_search_api import extracted, search  # noqa: F401 (a fixture)


def level(api, evidence_id, parent=""):
    response = api.get(f"/api/evidence/{evidence_id}/tree", {"parent": parent} if parent else {})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.corpus
def test_the_tree_opens_level_by_level_and_a_folder_narrows_the_search(demo, api, extracted):  # noqa: F811
    api.as_user(demo.detective)
    top = level(api, extracted)
    assert top["parent"] is None and [node["kind"] for node in top["nodes"]] == ["image"]
    path, node = [], top["nodes"][0]
    # Down to the file system: image → (volume …) → fileSystem.
    while node["kind"] != "fileSystem":
        path.append(node["kind"])
        node = level(api, extracted, node["uid"])["nodes"][0]
    root_folders = level(api, extracted, node["uid"])["nodes"]
    directory = next(n for n in root_folders if n["name"] == "a_directory")
    assert directory["kind"] == "folder" and directory["entries"] >= 2 and directory["deleted_entries"] == 0
    assert directory["query"] == f"uid:{directory['uid']}-*"

    listing = api.get(f"/api/evidence/{extracted}/tree/entries", {"folder": directory["uid"]}).json()
    names = {entry["name"] for entry in listing["entries"]}
    assert {"a_file", "another_file"} <= names
    a_file = next(entry for entry in listing["entries"] if entry["name"] == "a_file")
    assert a_file["is_folder"] is False and a_file["size"] is not None and a_file["modified"]

    hits = search(api, demo, query=f"{directory['query']} type:file").json()["hits"]
    assert {"a_file", "another_file"} <= {hit["name"] for hit in hits} <= names
    assert "passwords.txt" not in {hit["name"] for hit in hits}


def test_deleted_entries_are_counted_and_marked(demo, api):
    evidence = Evidence.objects.create(
        case=demo.case, label="Stick", kind="disk_image", registered_by=demo.custodian, wrapped_key=b"-"
    )
    run = ExtractionRun.objects.create(evidence=evidence)
    root = f"{evidence.pk}:0"
    rows = [
        (root, "", "stick.dd", ["image"], False),
        (f"{root}-1", root, "FAT", ["fileSystem"], False),
        (f"{root}-1-1", f"{root}-1", "Photos", ["file", "folder"], False),
        (f"{root}-1-2", f"{root}-1", "Gone", ["file", "folder"], True),
        (f"{root}-1-1-1", f"{root}-1-1", "a.jpg", ["file"], False),
        (f"{root}-1-1-2", f"{root}-1-1", "b.jpg", ["file"], True),
    ]
    Trace.objects.bulk_create(
        Trace(
            uid=uid,
            parent_uid=parent,
            name=name,
            path="/" + name,
            types=types,
            deleted=deleted,
            ordinal=i,
            evidence=evidence,
            case=demo.case,
            run=run,
        )
        for i, (uid, parent, name, types, deleted) in enumerate(rows)
    )
    api.as_user(demo.detective)
    nodes = {n["name"]: n for n in level(api, evidence.pk, f"{root}-1")["nodes"]}
    assert (nodes["Photos"]["entries"], nodes["Photos"]["deleted_entries"], nodes["Photos"]["branches"]) == (2, 1, 0)
    assert nodes["Gone"]["deleted"] is True
    listing = api.get(f"/api/evidence/{evidence.pk}/tree/entries", {"folder": f"{root}-1-1"}).json()
    assert [(e["name"], e["deleted"]) for e in listing["entries"]] == [("a.jpg", False), ("b.jpg", True)]

    # The page partials: the level marks the deleted folder, the listing the deleted file.
    from django.test import Client

    client = Client()
    client.force_login(demo.detective)
    nodes_html = client.get(f"/evidence/{evidence.pk}/folders/nodes/", {"parent": f"{root}-1"}).content.decode()
    assert "Gone" in nodes_html and "is-deleted" in nodes_html and "1 deleted" in nodes_html
    page = client.get(f"/evidence/{evidence.pk}/folders/", {"folder": f"{root}-1-1"}).content.decode()
    assert "b.jpg" in page and "Search in this folder" in page and quote(f"uid:{root}-1-1-*", safe="") in page


def test_hostile_parameters_are_clear_refusals(demo, api):
    evidence = Evidence.objects.create(
        case=demo.case, label="Stick", kind="disk_image", registered_by=demo.custodian, wrapped_key=b"-"
    )
    api.as_user(demo.detective)
    assert api.get(f"/api/evidence/{evidence.pk}/tree", {"parent": "nope"}).status_code == 404
    assert api.get(f"/api/evidence/{evidence.pk}/tree", {"parent": "x" * 500}).status_code == 400
    assert api.get(f"/api/evidence/{evidence.pk}/tree/entries").status_code == 400
    assert api.get(f"/api/evidence/{evidence.pk}/tree/entries", {"folder": "a", "page": "-1"}).status_code == 400
    assert level(api, evidence.pk) == {"parent": None, "nodes": [], "more": False}
    api.as_user(demo.users["outsider"])
    assert api.get(f"/api/evidence/{evidence.pk}/tree").status_code == 404


def test_hostile_page_parameters_are_400_pages(demo, client):
    evidence = Evidence.objects.create(
        case=demo.case, label="Stick", kind="disk_image", registered_by=demo.custodian, wrapped_key=b"-"
    )
    client.force_login(demo.detective)
    base = f"/evidence/{evidence.pk}/folders/"
    assert client.get(base + "list/", {"folder": "x", "page": "abc"}).status_code == 400
    assert client.get(base + "list/").status_code == 400
    assert client.get(base + "nodes/", {"parent": "\x00"}).status_code == 400
    assert client.get(base, {"folder": f"{evidence.pk}:0-9"}).status_code == 404
    assert client.get(base).status_code == 200
