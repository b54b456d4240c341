"""AzureBlobStore: object behaviour against a real Azurite; write-once policy checks through the real SDK
against FakeAzureTransport, because Azurite answers 501 to immutability and legal-hold calls."""

from __future__ import annotations

import io
import logging
import os
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from evidence.storage.azure import READINESS_PREFIX, AzureBlobStore
from evidence.storage.base import ObjectExists, ObjectMissing, RetentionViolation, StoreError
from tests.evidence.fake_azure import FAKE_CONNECTION_STRING, FakeAzureTransport, FakeContainer
from tests.servers import ServerUnavailable, azurite_server

EVIDENCE_ID = "6b1f0a52-3c9e-4d7a-8f21-90d4c1e5a7b3"
PREFIX = f"evidence/{EVIDENCE_ID}/"


# --- against a real Azurite ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite():
    try:
        with azurite_server() as server:
            yield server
    except ServerUnavailable as reason:
        pytest.skip(f"Azurite unavailable: {reason}")


@pytest.fixture
def azurite_store(azurite, caplog) -> AzureBlobStore:
    # A fresh container per test; Azurite has no immutability, hence the development setting.
    store = AzureBlobStore(
        connection_string=azurite.connection_string,
        container=f"evidence-{uuid.uuid4().hex[:12]}",
        allow_mutable_container=True,
    )
    with caplog.at_level(logging.WARNING, logger="evidence.storage.azure"):
        store.check_ready()
    assert "NOT write-once" in caplog.text
    return store


def test_azurite_put_read_ranges_and_size(azurite_store):
    payload = os.urandom(100_000)
    azurite_store.put(PREFIX + "chunk/00000000", payload)

    assert azurite_store.exists(PREFIX + "chunk/00000000")
    assert azurite_store.size(PREFIX + "chunk/00000000") == len(payload)
    assert azurite_store.read(PREFIX + "chunk/00000000") == payload
    assert azurite_store.read(PREFIX + "chunk/00000000", 4096, 512) == payload[4096:4608]
    assert azurite_store.read(PREFIX + "chunk/00000000", 99_990) == payload[99_990:]
    assert azurite_store.read(PREFIX + "chunk/00000000", 99_990, 1000) == payload[99_990:]
    assert azurite_store.read(PREFIX + "chunk/00000000", len(payload)) == b""
    assert azurite_store.read(PREFIX + "chunk/00000000", 10, 0) == b""


def test_azurite_large_stream_upload_in_blocks(azurite_store):
    payload = os.urandom(70 * 1024 * 1024 + 123)  # beyond the SDK's single-put limit: staged blocks
    azurite_store.put(PREFIX + "image", io.BytesIO(payload), length=len(payload))
    assert azurite_store.size(PREFIX + "image") == len(payload)
    assert azurite_store.read(PREFIX + "image", 64 * 1024 * 1024 - 10, 20) == payload[64 * 1024 * 1024 - 10 :][:20]


def test_azurite_no_overwrite(azurite_store):
    azurite_store.put(PREFIX + "manifest", b"original")
    with pytest.raises(ObjectExists):
        azurite_store.put(PREFIX + "manifest", b"replacement")
    assert azurite_store.read(PREFIX + "manifest") == b"original"


def test_azurite_short_stream_leaves_nothing(azurite_store):
    with pytest.raises(StoreError, match="short write"):
        azurite_store.put(PREFIX + "truncated", io.BytesIO(b"ten bytes!"), length=1000)
    assert not azurite_store.exists(PREFIX + "truncated")


def test_azurite_missing_objects(azurite_store):
    with pytest.raises(ObjectMissing):
        azurite_store.read(PREFIX + "nothing")
    with pytest.raises(ObjectMissing):
        azurite_store.read(PREFIX + "nothing", 0, 0)
    with pytest.raises(ObjectMissing):
        azurite_store.size(PREFIX + "nothing")
    with pytest.raises(ObjectMissing):
        azurite_store.delete(PREFIX + "nothing")
    assert not azurite_store.exists(PREFIX + "nothing")


def test_azurite_list_is_sorted_by_prefix_and_hides_control_blobs(azurite_store):
    keys = [PREFIX + "manifest", PREFIX + "chunk/00000001", PREFIX + "chunk/00000000", PREFIX + "index"]
    for key in keys:
        azurite_store.put(key, b"x")
    azurite_store.put("evidence/other/manifest", b"y")
    azurite_store.set_retention(PREFIX, until=None, legal_hold=True)  # writes a control record blob

    assert list(azurite_store.list(PREFIX)) == sorted(keys)
    assert list(azurite_store.list(PREFIX + "chunk/")) == sorted(keys)[:2]
    assert list(azurite_store.list("evidence/o")) == ["evidence/other/manifest"]
    assert list(azurite_store.list("")) == sorted([*keys, "evidence/other/manifest"])


def test_azurite_delete_and_store_enforced_hold(azurite_store):
    azurite_store.put(PREFIX + "manifest", b"{}")
    azurite_store.put("evidence/free/manifest", b"{}")
    azurite_store.set_retention(PREFIX, until=None, legal_hold=True)  # Azurite: 501, recorded by the store
    azurite_store.put(PREFIX + "chunk/00000000", b"written under hold")

    for key in (PREFIX + "manifest", PREFIX + "chunk/00000000"):
        with pytest.raises(RetentionViolation, match="legal hold"):
            azurite_store.delete(key)
    azurite_store.delete("evidence/free/manifest")
    assert not azurite_store.exists("evidence/free/manifest")

    azurite_store.set_retention(PREFIX, until=None, legal_hold=False)
    azurite_store.delete(PREFIX + "manifest")


def test_azurite_retention_is_never_shortened(azurite_store):
    later = date.today() + timedelta(days=90)
    azurite_store.set_retention(PREFIX, until=later, legal_hold=False)
    with pytest.raises(RetentionViolation, match="never shortened"):
        azurite_store.set_retention(PREFIX, until=later - timedelta(days=1), legal_hold=False)
    azurite_store.put(PREFIX + "manifest", b"{}")
    with pytest.raises(RetentionViolation, match="retention until"):
        azurite_store.delete(PREFIX + "manifest")


def test_azurite_server_side_copy(azurite_store):
    payload = os.urandom(300_000)
    azurite_store.put(PREFIX + "image", payload)
    azurite_store.copy(PREFIX + "image", "evidence/copy/image")
    assert azurite_store.read("evidence/copy/image") == payload
    with pytest.raises(ObjectExists):
        azurite_store.copy(PREFIX + "image", "evidence/copy/image")
    with pytest.raises(ObjectMissing):
        azurite_store.copy(PREFIX + "absent", "evidence/copy/absent")


def test_azurite_unsafe_keys_are_refused(azurite_store):
    for bad_key in ("../outside", "/absolute", "evidence//x", ".custodia/retention/x", "evidence/a b"):
        with pytest.raises(StoreError):
            azurite_store.put(bad_key, b"x")


def test_azurite_container_without_policy_is_refused_without_the_development_setting(azurite):
    store = AzureBlobStore(connection_string=azurite.connection_string, container=f"strict-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StoreError, match="does not exist"):
        store.check_ready()
    with pytest.raises(StoreError):
        store.put(PREFIX + "manifest", b"{}")  # put checks readiness itself


# --- write-once checks through the SDK against FakeAzureTransport --------------------------------


def fake_store(
    container: FakeContainer, *, allow_mutable_container: bool = False
) -> tuple[AzureBlobStore, FakeAzureTransport]:
    transport = FakeAzureTransport(container_name="evidence", container=container)
    store = AzureBlobStore(
        connection_string=FAKE_CONNECTION_STRING,
        container="evidence",
        allow_mutable_container=allow_mutable_container,
        transport=transport,
    )
    return store, transport


def test_locked_version_level_policy_is_ready():
    store, transport = fake_store(FakeContainer(default_policy_state="Locked"))
    store.check_ready()
    probes = [name for name in transport.container.blobs if name.startswith(READINESS_PREFIX)]
    assert len(probes) == 1
    store.put(PREFIX + "manifest", b"{}")


def test_a_locked_probe_is_reused_by_the_next_process():
    container = FakeContainer(default_policy_state="Locked")
    fake_store(container)[0].check_ready()
    fake_store(container)[0].check_ready()  # a second process: sees the locked probe, writes none
    assert len([name for name in container.blobs if name.startswith(READINESS_PREFIX)]) == 1


def test_unlocked_policy_is_refused():
    store, _ = fake_store(FakeContainer(default_policy_state="Unlocked"))
    with pytest.raises(StoreError, match="unlocked, not locked"):
        store.check_ready()
    with pytest.raises(StoreError, match="unlocked, not locked"):
        store.put(PREFIX + "manifest", b"{}")


def test_no_policy_is_refused():
    store, _ = fake_store(FakeContainer(default_policy_state=None))
    with pytest.raises(StoreError, match="no default immutability policy"):
        store.check_ready()


def test_container_without_version_level_worm_is_refused():
    store, _ = fake_store(FakeContainer(versioning_worm=False, default_policy_state=None))
    with pytest.raises(StoreError, match="version-level immutability"):
        store.check_ready()


def test_missing_container_is_refused():
    store, _ = fake_store(FakeContainer(exists=False))
    with pytest.raises(StoreError, match="does not exist"):
        store.check_ready()


def test_allow_mutable_container_accepts_with_a_warning(caplog):
    store, _ = fake_store(FakeContainer(default_policy_state="Unlocked"), allow_mutable_container=True)
    with caplog.at_level(logging.WARNING, logger="evidence.storage.azure"):
        store.check_ready()
    assert "NOT write-once" in caplog.text and "Development only" in caplog.text
    store.put(PREFIX + "manifest", b"{}")


def test_refusal_message_tells_the_operator_what_to_do():
    store, _ = fake_store(FakeContainer(default_policy_state="Unlocked"))
    with pytest.raises(StoreError) as refused:
        store.check_ready()
    message = str(refused.value)
    assert "'evidence'" in message and "locked" in message and "CUSTODIA_AZURE_ALLOW_MUTABLE_CONTAINER" in message
    assert "AccountKey" not in message and "ZmFrZS1rZXkt" not in message
    assert "ZmFrZS1rZXkt" not in repr(store)


def test_set_retention_applies_locked_policy_and_legal_hold_to_existing_and_later_blobs():
    store, transport = fake_store(FakeContainer(default_policy_state="Locked", default_retention_days=1))
    store.put(PREFIX + "chunk/00000000", b"before")
    until = date.today() + timedelta(days=3650)
    store.set_retention(PREFIX, until=until, legal_hold=True)
    store.put(PREFIX + "chunk/00000001", b"after")

    expected = datetime.combine(until, datetime.min.time(), tzinfo=UTC)
    for key in (PREFIX + "chunk/00000000", PREFIX + "chunk/00000001"):
        blob = transport.container.blobs[key]
        assert blob.policy_until == expected
        assert blob.policy_mode == "locked"
        assert blob.legal_hold is True
        with pytest.raises(RetentionViolation):
            store.delete(key)
    assert transport.container.blobs.keys() >= {PREFIX + "chunk/00000000", PREFIX + "chunk/00000001"}


def test_lifting_the_legal_hold_keeps_the_retention_date():
    store, transport = fake_store(FakeContainer(default_policy_state="Locked"))
    store.put(PREFIX + "manifest", b"{}")
    store.set_retention(PREFIX, until=date.today() + timedelta(days=30), legal_hold=True)
    store.set_retention(PREFIX, until=None, legal_hold=False)
    blob = transport.container.blobs[PREFIX + "manifest"]
    assert blob.legal_hold is False
    with pytest.raises(RetentionViolation, match="retention until"):
        store.delete(PREFIX + "manifest")


def test_retention_cannot_be_shortened_on_azure():
    store, _ = fake_store(FakeContainer(default_policy_state="Locked"))
    store.set_retention(PREFIX, until=date.today() + timedelta(days=30), legal_hold=False)
    with pytest.raises(RetentionViolation, match="never shortened"):
        store.set_retention(PREFIX, until=date.today() + timedelta(days=10), legal_hold=False)


def test_retention_prefix_must_end_at_a_path_level():
    store, _ = fake_store(FakeContainer(default_policy_state="Locked"))
    for prefix in ("evidence/6b1f", PREFIX + "manifest", ""):
        with pytest.raises(StoreError, match="must end with '/'"):
            store.set_retention(prefix, until=None, legal_hold=True)


def test_service_side_immutability_refusal_maps_to_retention_violation():
    store, _ = fake_store(FakeContainer(default_policy_state="Locked", default_retention_days=30))
    store.put(PREFIX + "manifest", b"{}")
    # The blob inherited the container's 30-day locked policy: the store reads it and refuses.
    with pytest.raises(RetentionViolation, match="immutability policy until"):
        store.delete(PREFIX + "manifest")
