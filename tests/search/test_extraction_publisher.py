"""Publishing traces: rows upserted by uid in batches, the first batch early, values as the model stores them."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from django.db import IntegrityError
from django.db.models import F

from search.extraction.pipeline import stream_dict
from search.extraction.traces import DataStream
from search.models import CasePropertyName, ExtractionRun, Trace
from search.publisher import BATCH_TRACES, Publisher
from search.services import property_names_rebuild


def test_a_stream_row_is_its_dataclass_as_a_dict():
    stream = DataStream(name="raw", size=3, data_path="{}", md5="m", sha1="s", sha256="x", entropy=1.5, mime_type="t")
    assert list(stream_dict(stream).items()) == list(asdict(stream).items())


def _row(index: int, **changes) -> dict:
    row = {
        "uid": f"ev:0-{index}",
        "parent_uid": "ev:0",
        "name": f"file{index}.txt",
        "path": f"/image/file{index}.txt",
        "types": ["file"],
        "properties": {"file.name": f"file{index}.txt", "file.mimeType": "text/plain", "nested": {"ü": [1, None]}},
        "streams": [{"name": "raw", "size": index, "data_path": "{}", "sha256": f"{index:064x}"}],
        "tools": {"file": ["pytsk3", "4"]},
        "errors": [{"tool": "text", "message": "bad", "stream": None}] if index % 2 else [],
        "deleted": bool(index % 3 == 0),
        "text": f"text of file {index}",
    }
    row.update(changes)
    return row


@pytest.fixture
def run(demo):
    from evidence.services.registration import evidence_register

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    run = ExtractionRun.objects.create(evidence=evidence, state="running")
    return ExtractionRun.objects.select_related("evidence").get(pk=run.pk)


@pytest.mark.django_db
def test_rows_are_stored_as_given_and_the_first_batch_is_committed_early(run):
    publisher = Publisher(run, shard=0)
    for index in range(1, Publisher.FIRST_BATCH_TRACES):
        publisher.add(_row(index))
    assert not Trace.objects.filter(run=run).exists()
    publisher.add(_row(Publisher.FIRST_BATCH_TRACES))
    assert Trace.objects.filter(run=run).count() == Publisher.FIRST_BATCH_TRACES  # committed, searchable
    for index in range(Publisher.FIRST_BATCH_TRACES + 1, Publisher.FIRST_BATCH_TRACES + 10):
        publisher.add(_row(index))
    assert Trace.objects.filter(run=run).count() == Publisher.FIRST_BATCH_TRACES  # later batches are larger
    assert BATCH_TRACES > Publisher.FIRST_BATCH_TRACES
    publisher.flush()

    stored = Trace.objects.get(uid="ev:0-7")
    expected = _row(7)
    for key, value in expected.items():
        assert getattr(stored, key) == value, key
    assert (stored.evidence_id, stored.case_id, stored.run_id) == (run.evidence_id, run.evidence.case_id, run.pk)
    assert (stored.ordinal, stored.has_errors, stored.sha256) == (7, True, f"{7:064x}")
    assert stored.mime_type == "text/plain" and stored.extracted_at is not None
    run.refresh_from_db()
    assert (run.traces, run.files, run.errors) == (59, 59, 30)
    assert run.bytes_processed == sum(range(1, 60)) and run.first_trace_at is not None


@pytest.mark.django_db
def test_publishing_the_same_uids_again_updates_them(run):
    first = Publisher(run, shard=0)
    for index in range(1, 4):
        first.add(_row(index))
    first.flush()
    again = Publisher(run, shard=0)
    for index in range(1, 4):
        again.add(_row(index, name=f"renamed{index}", errors=[]))
    again.flush()
    assert sorted(Trace.objects.filter(run=run).values_list("uid", "name", "has_errors")) == [
        ("ev:0-1", "renamed1", False),
        ("ev:0-2", "renamed2", False),
        ("ev:0-3", "renamed3", False),
    ]


@pytest.mark.django_db
def test_the_property_names_of_published_traces_are_recorded_for_completion(run):
    publisher = Publisher(run, shard=0)
    publisher.add(_row(1))
    publisher.add(_row(2, properties={"email.subject": "Hi", "x" * 300: "a name too long to offer"}))
    publisher.flush()
    case = run.evidence.case_id
    recorded = ["email.subject", "file.mimeType", "file.name", "nested"]
    assert list(CasePropertyName.objects.filter(case_id=case).values_list("name", flat=True)) == recorded
    # Traces gone, or written by something else: a rebuild reads them all.
    Trace.objects.filter(run=run, name="file2.txt").delete()
    property_names_rebuild(case_id=case)
    assert list(CasePropertyName.objects.filter(case_id=case).values_list("name", flat=True)) == recorded[1:]


def _found(word: str, *, case_id: int | None = None) -> set[str]:
    from search.backends.sql import compile_q
    from search.query import parse_query

    return set(Trace.objects.filter(compile_q(parse_query(word), case_id=case_id)).values_list("uid", flat=True))


def _deferrals() -> int:
    from django.db import connection

    from search.backends.sql import fulltext

    if connection.vendor != "sqlite":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {fulltext.DEFERRAL_TABLE}")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_word_index_follows_published_batches_new_upserted_twice_and_deleted(run):
    publisher = Publisher(run, shard=0)
    for index in range(1, 4):
        publisher.add(_row(index, text=f"alpha{index} shared"))
    publisher.flush()
    assert _found("alpha2") == {"ev:0-2"} and _found("shared") == {"ev:0-1", "ev:0-2", "ev:0-3"}
    # A later batch: a new trace, an existing one changed, and a new one written twice in the same batch.
    publisher.add(_row(4, text="beta4 shared"))
    publisher.add(_row(2, text="gamma2"))
    publisher.add(_row(5, text="delta5 first"))
    publisher.add(_row(5, text="delta5 second"))
    publisher.flush()
    assert _found("alpha2") == set() and _found("gamma2") == {"ev:0-2"}
    assert _found("beta4") == {"ev:0-4"} and _found("second") == {"ev:0-5"} and _found("first") == set()
    assert _found("shared") == {"ev:0-1", "ev:0-3", "ev:0-4"}
    Trace.objects.filter(uid="ev:0-4").delete()
    assert _found("beta4") == set()
    # Traces written any other way are indexed by the triggers, as before.
    Trace.objects.filter(uid="ev:0-1").update(text="epsilon1")
    assert _found("epsilon1") == {"ev:0-1"} and _found("alpha1") == set()
    assert _deferrals() == 0  # no writer holds a deferral once its batch is in


@pytest.mark.django_db
def test_a_batch_that_fails_leaves_neither_rows_nor_words_nor_a_deferral(run):
    publisher = Publisher(run, shard=0)
    publisher.add(_row(1, text="kept1"))
    publisher.flush()
    publisher.add(_row(2, text="lost2"))
    publisher.add(_row(3, text="lost3", name=None))  # NOT NULL: the batch fails as a whole
    with pytest.raises(IntegrityError):
        publisher.flush()
    assert _found("lost2") == set() and _found("kept1") == {"ev:0-1"}
    assert not Trace.objects.filter(uid="ev:0-2").exists()
    assert _deferrals() == 0


@pytest.mark.django_db
def test_while_a_batch_defers_its_words_the_triggers_leave_its_new_rows_to_it(run):
    from django.db import connection, transaction

    from search.backends.sql import fulltext

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's trigger computes a row's words as it is written")
    publisher = Publisher(run, shard=0)
    publisher.add(_row(1, text="older1"))
    publisher.flush()
    with transaction.atomic(), connection.cursor() as cursor:
        mark = fulltext.defer_words(cursor)
        publisher.add(_row(2, text="newer2"))
        publisher.add(_row(1, text="changed1"))
        cursor.executemany(publisher.upsert_sql(), publisher.parameters())
        # The new row waits for the batch; the row from before the mark is still kept by its trigger.
        assert _found("newer2") == set() and _found("changed1") == {"ev:0-1"}
        fulltext.index_deferred_words(cursor, after_id=mark)
        assert _found("newer2") == {"ev:0-2"}
    assert _deferrals() == 0


def _numbers() -> dict[str, dict[str, float]]:
    """The number index, as {uid: {name: value}}."""
    from django.db import connection

    from search.backends.sql import fulltext

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.uid, n.name, n.value FROM {fulltext.NUMBER_TABLE} n JOIN search_trace t ON t.id = n.trace_id"
        )
        found: dict[str, dict[str, float]] = {}
        for uid, name, value in cursor.fetchall():
            found.setdefault(uid, {})[name] = float(value)
        return found


@pytest.mark.django_db
def test_the_number_index_follows_published_batches_new_upserted_twice_and_deleted(run):
    def numbers(width, **more):
        return {"picture.width": width, "file.size": 10, "picture.model": "X100", "flag": True, **more}

    publisher = Publisher(run, shard=0)
    publisher.add(_row(1, properties=numbers(640)))
    publisher.add(_row(2, properties=numbers(4000, **{"gps.latitude": 52.37})))
    publisher.flush()
    # Numbers only: not strings, not booleans, and not file.size, which has a column of its own.
    assert _numbers() == {"ev:0-1": {"picture.width": 640}, "ev:0-2": {"picture.width": 4000, "gps.latitude": 52.37}}
    publisher.add(_row(2, properties=numbers(800)))  # changed: its latitude is gone
    publisher.add(_row(3, properties=numbers(1)))
    publisher.add(_row(3, properties=numbers(3)))  # written twice in one batch
    publisher.flush()
    assert _numbers() == {
        "ev:0-1": {"picture.width": 640},
        "ev:0-2": {"picture.width": 800},
        "ev:0-3": {"picture.width": 3},
    }
    Trace.objects.filter(uid="ev:0-1").delete()
    Trace.objects.filter(uid="ev:0-3").update(properties={"picture.height": 7})  # any other writer: the triggers
    assert _numbers() == {"ev:0-2": {"picture.width": 800}, "ev:0-3": {"picture.height": 7}}
    case_id = run.evidence.case_id
    assert _found("picture.width>=800", case_id=case_id) == {"ev:0-2"}
    assert _found("picture.height<10", case_id=case_id) == {"ev:0-3"}


@pytest.mark.django_db
def test_the_words_the_publisher_computes_are_those_of_the_trigger(run):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite's publisher indexes a batch's words in SQL (index_deferred_words)")
    odd = {"email.subject": "Re: Ünïcode — naïve_café 2019-03-07T10:00Z", "n": 5, "flag": True, "list": ["x y"]}
    publisher = Publisher(run, shard=0)
    publisher.add(_row(1, name="Passwords.TXT", path="/home/j_doe/Passwords.TXT", text="crème-brûlée\tß ǅ ½ ٣"))
    publisher.add(_row(2, properties=odd, text="x" * 10 + " tail"))
    publisher.flush()
    publisher.add(_row(2, properties=odd, text="changed words"))  # an upsert sets a new vector too
    publisher.flush()

    def vectors() -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT uid, search_vector::text FROM search_trace WHERE run_id = %s", [run.pk])
            return dict(cursor.fetchall())

    written = vectors()
    assert "'changed'" in written["ev:0-2"] and "'tail'" not in written["ev:0-2"]
    Trace.objects.filter(run=run).update(name=F("name"))  # the trigger computes them again from the row
    assert vectors() == written


@pytest.mark.django_db
def test_rows_copied_straight_carry_the_vector_and_numbers_the_triggers_compute(run):
    from django.db import connection

    from search.backends.sql import fulltext

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL copies new rows straight into the table with their vectors")
    # Words PostgreSQL's parser splits (a number in scientific notation heads 3e7abc), a word too long to
    # index, more than 255 of one word and more than 16,383 positions: the copied vector is to_tsvector's.
    hashes = [{"name": "raw", "size": 1, "data_path": "{}", "md5": "3e7abc" + "0" * 26, "sha256": "12e3e4" + "f" * 58}]
    long_text = " ".join(["the"] * 300 + ["w"] * 17000 + ["x" * 2047, "tail", "1e5" + "a" * 2050, "9e33"])
    publisher = Publisher(run, shard=0)
    publisher.add(_row(1, name="Report_3e7abc.TXT", streams=hashes, properties={"n": 4000, "f": 0.5, "b": True}))
    publisher.add(_row(2, text=long_text))
    publisher.add(_row(3, text="Ünïcode: the trigger computes its words"))
    publisher.flush()
    assert fulltext.document_tsvector(name="", path="", text="naïve", properties={}) is None

    def vectors() -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT uid, search_vector::text FROM search_trace WHERE run_id = %s", [run.pk])
            return dict(cursor.fetchall())

    written = vectors()
    assert "'3e7':" in written["ev:0-1"] and "'unicode'" not in written["ev:0-3"] and "'ünïcode'" in written["ev:0-3"]
    Trace.objects.filter(run=run).update(name=F("name"))  # the trigger computes them again from the row
    assert vectors() == written
    assert _numbers() == {"ev:0-1": {"n": 4000, "f": 0.5}}
    # A bare hash still finds its trace, whichever words the parser makes of it.
    assert _found("3e7abc" + "0" * 26) == {"ev:0-1"} and _found("12e3e4" + "f" * 58) == {"ev:0-1"}


@pytest.mark.django_db
def test_a_batch_of_uids_already_there_is_upserted_and_so_are_the_next(run):
    first = Publisher(run, shard=0)
    for index in range(1, 4):
        first.add(_row(index, text=f"old{index}"))
    first.flush()
    again = Publisher(run, shard=0)  # a redelivered run: the copy meets the uids, the batch is upserted
    again.add(_row(2, text="new2"))
    again.add(_row(4, text="new4"))
    again.flush()
    again.add(_row(3, text="new3"))
    again.flush()
    assert Trace.objects.filter(run=run).count() == 4
    assert _found("new2") == {"ev:0-2"} and _found("new3") == {"ev:0-3"} and _found("new4") == {"ev:0-4"}
    assert _found("old2") == set() and _found("old1") == {"ev:0-1"}
