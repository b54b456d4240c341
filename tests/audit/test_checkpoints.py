"""Signed checkpoints and per-case chains (#15): each attack of a hostile database administrator now fails
verification with its own message; checkpoints are write-once in the evidence store; the signers
round-trip with `cryptography`; a case's export carries its events, hashes and signed statements."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from audit import checks as audit_checks
from audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_json, link_hash
from audit.checkpoint_writer import checkpoint_write
from audit.checkpoints import (
    CheckpointExists,
    PublicKey,
    canonical_bytes,
    case_statements_digest,
    checkpoint_name,
    get_archive,
    signature_valid,
    signed_entry,
)
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.verify import verify_chain, verify_trail
from evidence.checkpoints import KeyStoreCheckpointSigner
from evidence.keystore.azure import AzureKeyVaultStore
from evidence.keystore.local import LocalKeyStore, generate_master_key
from evidence.storage.base import ObjectExists, RetentionViolation, get_store
from tests.evidence.fake_keyvault import FakeKeyVaultTransport, StaticTokenCredential

VAULT_URL = "https://custodia-test.vault.azure.net"


def run_audit_verify() -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), (out.getvalue() + err.getvalue()).strip()
    return 0, (out.getvalue() + err.getvalue()).strip()


def case_events(case_id: int, count: int, action: str = "case.member.add") -> None:
    for index in range(count):
        audit_record(action=action, target_type="case", target_id=case_id, case_id=case_id, details={"n": index})


def drop_append_only_triggers() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")


def restore_sqlite_triggers() -> None:
    """After an attack on SQLite, put the triggers back so that only the attack itself is reported."""
    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update_delete")
        return
    from importlib import import_module

    migration = import_module("audit.migrations.0002_append_only_triggers")
    with connection.cursor() as cursor:
        for statement in migration.SQLITE_UP:
            cursor.execute(statement)


def rehash_everything() -> None:
    """What a database administrator who knows the (keyless) chain format does after an edit: recompute
    every global and case hash from the first row on, so that both chains link up again."""
    previous, case_heads = GENESIS_HASH, {}
    fields = (*HASHED_FIELDS, "hash", "case_sequence", "case_hash")
    with connection.cursor() as cursor:
        for row in AuditEvent.objects.order_by("sequence").values(*fields):
            canonical = canonical_json(row)
            new_hash = link_hash(previous, canonical)
            updates = {"prev_hash": previous, "hash": new_hash}
            if row["case_id"] is not None:
                case_sequence, case_prev = case_heads.get(row["case_id"], (0, GENESIS_HASH))
                updates.update(
                    case_sequence=case_sequence + 1, case_prev_hash=case_prev, case_hash=link_hash(case_prev, canonical)
                )
                case_heads[row["case_id"]] = (case_sequence + 1, updates["case_hash"])
            assignments = ", ".join(f"{name} = %s" for name in updates)
            cursor.execute(
                f"UPDATE audit_auditevent SET {assignments} WHERE sequence = %s", [*updates.values(), row["sequence"]]
            )
            previous = new_hash


def archive_path(number: int) -> Path:
    root = Path(settings.CUSTODIA_EVIDENCE_STORE_OPTIONS["root"])
    return root / (settings.CUSTODIA_AUDIT_ARCHIVE_OPTIONS["prefix"] + checkpoint_name(number))


def replace_archived(number: int, document: bytes) -> None:
    """The attacker with root on the store's folder (the local store cannot stop the folder's owner)."""
    path = archive_path(number)
    path.unlink()
    path.write_bytes(document)


# --- signers --------------------------------------------------------------------------------------


def test_local_signer_is_ed25519_and_verifies_with_cryptography(tmp_path):
    store = LocalKeyStore(
        path=tmp_path / "keys.json", master_key=generate_master_key(), signing_key=generate_master_key()
    )
    signer = KeyStoreCheckpointSigner(keystore=store)
    data = b'{"checkpoint":1}'
    signature = signer.sign(data)
    assert signer.algorithm == "ed25519" and len(signature) == 64 and len(signer.public_key_bytes()) == 32
    ed25519.Ed25519PublicKey.from_public_bytes(signer.public_key_bytes()).verify(signature, data)
    assert signer.fingerprint == hashlib.sha256(signer.public_key_bytes()).hexdigest()
    key = PublicKey("ed25519", signer.public_key_bytes())
    assert signature_valid(key, data, signature)
    assert not signature_valid(key, data + b" ", signature)


def test_local_signing_key_is_kept_apart_from_the_master_key(tmp_path):
    master = generate_master_key()
    store = LocalKeyStore(path=tmp_path / "keys.json", master_key=master, signing_key=master)
    with pytest.raises(Exception, match="must not be the master key"):
        store.check_ready()
    no_signing_key = LocalKeyStore(path=tmp_path / "keys.json", master_key=master)
    with pytest.raises(Exception, match="CUSTODIA_AUDIT_SIGNING_KEY"):
        no_signing_key.sign(b"data")


def test_key_vault_signer_is_p256_and_verifies_with_cryptography():
    transport = FakeKeyVaultTransport(vault_url=VAULT_URL)
    store = AzureKeyVaultStore(
        vault_url=VAULT_URL, key_name="custodia-kek", credential=StaticTokenCredential(), transport=transport
    )
    signer = KeyStoreCheckpointSigner(keystore=store)
    data = b'{"checkpoint":1,"format":"custodia-checkpoint/1"}'
    signature = signer.sign(data)
    assert signer.algorithm == "ecdsa-p256-sha256" and len(signature) == 64
    public = load_der_public_key(signer.public_key_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    key = PublicKey("ecdsa-p256-sha256", signer.public_key_bytes())
    assert signature_valid(key, data, signature)
    assert not signature_valid(key, data[:-1], signature)


# --- writing checkpoints ---------------------------------------------------------------------------


def test_a_custody_critical_event_is_checkpointed_when_it_commits(demo, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event = audit_record(
            action="evidence.secret.reveal", target_type="evidence", target_id="e1", case_id=demo.case.pk
        )
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.number, checkpoint.sequence, checkpoint.hash) == (1, event.sequence, event.hash)
    document = json.loads(get_archive().get(checkpoint_name(1)))
    statement = json.loads(document["global"]["statement"])
    assert statement["format"] == "custodia-checkpoint/2" and statement["previous"] == GENESIS_HASH
    assert statement["cases_digest"] == case_statements_digest([entry["statement"] for entry in document["cases"]])
    assert statement["key_fingerprint"] == KeyStoreCheckpointSigner().fingerprint
    case_statements = [json.loads(entry["statement"]) for entry in document["cases"]]
    mine = next(item for item in case_statements if item["case"] == demo.case.pk)
    assert (mine["case_sequence"], mine["case_hash"]) == (event.case_sequence, event.case_hash)
    # A read is not custody-critical: no checkpoint of its own.
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit_record(action="case-detail.access", case_id=demo.case.pk)
    assert AuditCheckpoint.objects.count() == 1


def test_every_nth_event_is_checkpointed(demo, settings, django_capture_on_commit_callbacks):
    settings.CUSTODIA_AUDIT_CHECKPOINT_EVENTS = 4
    for _ in range(8):
        with django_capture_on_commit_callbacks(execute=True):
            case_events(demo.case.pk, 1)
    assert all(sequence % 4 == 0 for sequence in AuditCheckpoint.objects.values_list("sequence", flat=True))
    assert AuditCheckpoint.objects.count() >= 2


def test_case_update_of_hold_or_retention_is_custody_critical():
    from audit.actions import is_custody_critical

    assert is_custody_critical("case.update", {"before": {"legal_hold": False}, "after": {"legal_hold": True}})
    assert not is_custody_critical("case.update", {"before": {"title": "a"}, "after": {"title": "b"}})
    for name in ("evidence.seal", "link.use", "audit.export", "custody.report", "case.hold", "case.retention"):
        assert is_custody_critical(name)


def test_a_checkpoint_is_write_once_in_the_store(demo):
    case_events(demo.case.pk, 2)
    checkpoint = checkpoint_write()
    key = settings.CUSTODIA_AUDIT_ARCHIVE_OPTIONS["prefix"] + checkpoint_name(checkpoint.number)
    with pytest.raises(CheckpointExists):
        get_archive().put(checkpoint_name(checkpoint.number), b"{}")
    with pytest.raises(ObjectExists):
        get_store().put(key, b"{}")
    with pytest.raises(RetentionViolation):
        get_store().delete(key)
    assert checkpoint_write() is None  # nothing new: no empty checkpoint


def test_a_lost_index_row_is_recovered_from_the_archive_and_no_number_is_signed_twice(demo):
    case_events(demo.case.pk, 2)
    first = checkpoint_write()
    AuditCheckpoint.objects.all().delete()  # the index is not the authority
    case_events(demo.case.pk, 1)
    second = checkpoint_write()
    assert (first.number, second.number) == (1, 2)
    assert AuditCheckpoint.objects.filter(number=1).exists()
    assert verify_trail().ok


def test_case_chains_link_each_case_on_its_own(demo):
    case_events(demo.case.pk, 3)
    case_events(demo.other_case.pk, 2)
    rows = list(AuditEvent.objects.filter(case_id=demo.case.pk).order_by("sequence"))
    assert [row.case_sequence for row in rows] == list(range(1, len(rows) + 1))
    assert rows[0].case_prev_hash == GENESIS_HASH
    assert all(later.case_prev_hash == earlier.case_hash for earlier, later in itertools.pairwise(rows))
    assert AuditEvent.objects.filter(case_id__isnull=True, case_sequence__isnull=False).count() == 0
    assert verify_chain().ok


# --- the attacks of the issue ------------------------------------------------------------------------


@pytest.fixture
def checkpointed(demo):
    """A trail with two checkpoints and two rows after the second."""
    case_events(demo.case.pk, 3)
    checkpoint_write()
    case_events(demo.case.pk, 2)
    case_events(demo.other_case.pk, 1)
    second = checkpoint_write()
    case_events(demo.case.pk, 2)
    return second


def test_an_untouched_trail_names_its_checkpoint(checkpointed):
    code, output = run_audit_verify()
    rows = AuditEvent.objects.count()
    assert code == 0, output
    assert output == (
        f"OK {rows} events, checkpoint 2 at sequence {checkpointed.sequence}; "
        f"not yet checkpointed: {rows - checkpointed.sequence} rows"
    )


def test_deleting_the_last_rows_is_tail_truncation(checkpointed):
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence >= %s", [checkpointed.sequence - 1])
    restore_sqlite_triggers()
    code, output = run_audit_verify()
    assert code == 1
    assert f"tail truncated: checkpoint 2 signed sequence {checkpointed.sequence}" in output


def test_an_edited_row_with_every_later_hash_recomputed_is_a_rewrite(checkpointed):
    target = AuditEvent.objects.filter(case_id__isnull=False).order_by("sequence")[1].sequence
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = %s", [target])
    rehash_everything()
    restore_sqlite_triggers()
    assert verify_chain().ok  # without the checkpoints the rewrite cannot be seen: that was the hole
    code, output = run_audit_verify()
    assert code == 1
    first_checkpoint = AuditCheckpoint.objects.get(number=1)
    assert output.startswith(f"BROKEN at sequence {first_checkpoint.sequence}: rewritten: checkpoint 1 signed")


def test_an_appended_forged_reveal_is_an_unsigned_custody_critical_event(checkpointed, demo):
    last = AuditEvent.objects.order_by("-sequence").first()
    case_last = AuditEvent.objects.filter(case_id=demo.case.pk).order_by("-sequence").first()
    row = {
        "sequence": last.sequence + 1,
        "occurred_at": "2026-12-04T23:59:59.123456Z",
        "actor_id": demo.custodian.pk,
        "actor": "custodian",
        "organization_id": demo.case.organization_id,
        "action": "evidence.secret.reveal",
        "target_type": "evidence",
        "target_id": "forged",
        "case_id": demo.case.pk,
        "outcome": "ok",
        "request_id": "",
        "client_address": "10.0.0.66",
        "details": {},
    }
    canonical = canonical_json(row)
    AuditEvent.objects.create(
        **row,
        prev_hash=last.hash,
        hash=link_hash(last.hash, canonical),
        case_sequence=case_last.case_sequence + 1,
        case_prev_hash=case_last.case_hash,
        case_hash=link_hash(case_last.case_hash, canonical),
    )
    assert verify_chain().ok  # it links up perfectly
    code, output = run_audit_verify()
    assert code == 1
    assert output == (
        f"BROKEN at sequence {last.sequence + 1}: unsigned custody-critical event: no checkpoint covers this "
        "evidence.secret.reveal (a forged row, or its checkpoint failed: run manage.py audit_checkpoint once the "
        "store is back)"
    )


def test_a_disabled_or_missing_trigger_is_reported_by_verify_and_check_deploy(checkpointed):
    drop_append_only_triggers()
    code, output = run_audit_verify()
    assert code == 1
    expected = "disabled" if connection.vendor == "postgresql" else "missing"
    assert output.startswith(f"BROKEN: append-only triggers {expected}: audit_event_no_")
    errors = audit_checks.append_only_triggers()
    assert [error.id for error in errors] == ["audit.E001"]


def test_a_missing_checkpoint_number_is_reported(checkpointed):
    archive_path(1).unlink()
    code, output = run_audit_verify()
    assert code == 1
    assert output == "BROKEN: checkpoint 1 is missing from the archive (the next is 2)"


def test_a_checkpoint_signed_by_another_key_or_unsigned_is_reported(checkpointed):
    document = json.loads(archive_path(2).read_bytes())
    other = ed25519.Ed25519PrivateKey.generate()
    document["global"]["signature"] = base64.b64encode(other.sign(b"something else")).decode()
    replace_archived(2, canonical_bytes(document))
    code, output = run_audit_verify()
    assert code == 1
    assert output.startswith("BROKEN: checkpoint 2: the signature does not verify under key")
    document["global"]["signature"] = ""
    replace_archived(2, canonical_bytes(document))
    code, output = run_audit_verify()
    assert output.startswith("BROKEN: checkpoint 2: the signature does not verify")


def test_a_case_statement_swapped_under_a_signed_checkpoint_is_reported(checkpointed, demo):
    """Version 2 signs the digest of its case statements: one replaced, even signed with the organisation's
    own key, no longer matches the signed global statement."""
    document = json.loads(archive_path(2).read_bytes())
    entry = next(item for item in document["cases"] if json.loads(item["statement"])["case"] == demo.case.pk)
    statement = json.loads(entry["statement"])
    statement["case_hash"] = "f" * 64
    document["cases"][document["cases"].index(entry)] = signed_entry(
        KeyStoreCheckpointSigner(), canonical_bytes(statement)
    )
    replace_archived(2, canonical_bytes(document))
    code, output = run_audit_verify()
    assert code == 1
    assert output == "BROKEN: checkpoint 2: its case statements are not the ones it signed"


def test_a_version_1_checkpoint_has_each_case_statement_checked(checkpointed, demo):
    """Checkpoints written before the case digest was signed (version 1) still verify, each case statement
    by its own signature; a bad one is reported."""
    signer = KeyStoreCheckpointSigner()
    previous = GENESIS_HASH
    for number in (1, 2):
        document = json.loads(archive_path(number).read_bytes())
        statement = json.loads(document["global"]["statement"])
        statement["format"] = "custodia-checkpoint/1"
        statement["previous"] = previous
        del statement["cases_digest"]
        document["global"] = signed_entry(signer, canonical_bytes(statement))
        previous = hashlib.sha256(document["global"]["statement"].encode()).hexdigest()
        replace_archived(number, canonical_bytes(document))
    code, output = run_audit_verify()
    assert code == 0, output
    document = json.loads(archive_path(2).read_bytes())
    document["cases"][0]["signature"] = base64.b64encode(b"\0" * 64).decode()
    replace_archived(2, canonical_bytes(document))
    code, output = run_audit_verify()
    assert code == 1
    assert output.startswith("BROKEN: checkpoint 2: case ") and "the signature does not verify" in output


def test_a_checkpoint_whose_previous_link_breaks_is_reported(checkpointed):
    document = json.loads(archive_path(2).read_bytes())
    statement = json.loads(document["global"]["statement"])
    statement["previous"] = GENESIS_HASH
    # Even signed with the organisation's own key (a stolen key cannot skip a checkpoint unseen).
    document["global"] = signed_entry(KeyStoreCheckpointSigner(), canonical_bytes(statement))
    replace_archived(2, canonical_bytes(document))
    code, output = run_audit_verify()
    assert code == 1
    assert output == "BROKEN: checkpoint 2: its previous link does not match the checkpoint before it"


def test_the_scheduled_check_records_the_checkpoint_it_verified_against(checkpointed):
    from audit.services import audit_chain_check

    result = audit_chain_check()
    assert result["ok"] and result["checkpoint"] == 2
    assert AuditEvent.objects.order_by("-sequence").first().action == "audit.verify"


# --- the export and the public key ------------------------------------------------------------------


def export_lines(api, user, case_id: int, capture_on_commit) -> list[dict]:
    """Export as the server does: the request's transaction commits (and its checkpoint is written)
    before the first line is read."""
    api.as_user(user)
    with capture_on_commit(execute=True):
        response = api.get(f"/api/cases/{case_id}/audit/export")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/x-ndjson")
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def test_the_export_of_a_case_has_its_events_hashes_and_signed_statements(
    demo, api, django_capture_on_commit_callbacks
):
    case_events(demo.case.pk, 3)
    case_events(demo.other_case.pk, 2)
    checkpoint_write()
    case_events(demo.case.pk, 1)
    lines = export_lines(api, demo.prosecutor, demo.case.pk, django_capture_on_commit_callbacks)
    header, *rest = lines
    signer = KeyStoreCheckpointSigner()
    assert header["type"] == "export" and header["format"] == "custodia-audit-export/1"
    assert header["case"] == {"id": demo.case.pk, "reference": demo.case.reference}
    assert header["keys"] == [
        {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(signer.public_key_bytes()).decode(),
            "fingerprint": signer.fingerprint,
        }
    ]
    events = [line for line in rest if line["type"] == "event"]
    statements = [line for line in rest if line["type"] == "checkpoint"]
    assert rest == events + statements  # events first, then the statements
    expected = AuditEvent.objects.filter(case_id=demo.case.pk).order_by("case_sequence")
    assert [line["case_sequence"] for line in events] == list(range(1, expected.count() + 1))
    assert all(line["row"]["case_id"] == demo.case.pk for line in events)
    assert events[-1]["row"]["action"] == "audit.export" and events[-1]["row"]["actor"] == "prosecutor"
    previous = GENESIS_HASH
    for line in events:
        canonical = canonical_bytes(line["row"])
        assert line["case_prev_hash"] == previous
        assert line["case_hash"] == link_hash(previous, canonical)
        assert line["hash"] == link_hash(line["prev_hash"], canonical)
        previous = line["case_hash"]
    # The checkpoint written before and the one the export's own (custody-critical) row triggered.
    assert len(statements) == 2
    key = PublicKey("ed25519", signer.public_key_bytes())
    by_sequence = {line["case_sequence"]: line["case_hash"] for line in events}
    for line in statements:
        statement = json.loads(line["statement"])
        assert statement["format"] == "custodia-case-checkpoint/1" and statement["case"] == demo.case.pk
        assert line["key_fingerprint"] == signer.fingerprint and line["algorithm"] == "ed25519"
        assert signature_valid(key, line["statement"].encode(), base64.b64decode(line["signature"]))
        assert by_sequence[statement["case_sequence"]] == statement["case_hash"]
    assert json.loads(statements[-1]["statement"])["case_sequence"] == len(events)
    # Nothing of the other case.
    assert str(demo.other_case.pk) not in {str(line["row"]["case_id"]) for line in events}


def test_the_export_is_refused_to_members_who_may_not_read_the_audit(demo, api):
    api.as_user(demo.detective)
    assert api.get(f"/api/cases/{demo.case.pk}/audit/export").status_code == 403
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_public_key_is_published_to_anyone_logged_in(demo, api):
    api.as_user(None)
    assert api.get("/api/audit/public-key").status_code == 401
    api.as_user(demo.detective)
    body = api.get("/api/audit/public-key").json()
    assert body["algorithm"] == "ed25519"
    assert body["fingerprint"] == hashlib.sha256(base64.b64decode(body["public_key"])).hexdigest()


def test_the_case_audit_page_names_the_checkpoint(checkpointed, demo, client):
    client.force_login(demo.custodian)
    text = client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert "verified against signed checkpoint 2" in text
    assert "Not yet checkpointed:" in text


def test_the_migration_links_existing_events_to_their_case_chains(demo):
    from importlib import import_module

    from django.apps import apps as global_apps

    migration = import_module("audit.migrations.0003_case_chain_and_checkpoints")
    case_events(demo.case.pk, 3)
    expected = list(AuditEvent.objects.order_by("sequence").values_list("case_sequence", "case_hash"))
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET case_sequence = NULL, case_prev_hash = NULL, case_hash = NULL")
    restore_sqlite_triggers()
    # The fill uses only the schema editor's connection (a real schema editor cannot open inside a test's
    # transaction on SQLite).
    migration.link_existing_events_to_their_case_chains(global_apps, SimpleNamespace(connection=connection))
    assert list(AuditEvent.objects.order_by("sequence").values_list("case_sequence", "case_hash")) == expected
    assert audit_checks.append_only_triggers() == []
