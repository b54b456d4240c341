"""The offline verifier a defence expert is handed (audit/offline_verify.py).

The exports here are built by the test itself, straight from CONTRACT #15 with the ``cryptography`` library
(Ed25519 and P-256 keys), not by Custodia's exporter: the verifier must agree with the format, not with one
implementation of it. The command-line runs copy the file to an empty directory and start it with ``-I -S``
(isolated, no site-packages), which proves it needs nothing but the standard library.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from audit import chain
from audit import offline_verify as ov

VERIFIER = Path(ov.__file__)
CASE_ID = 7
OTHER_CASE_ID = 8
REFERENCE = "2026-0042"
GENESIS = "0" * 64


# --- Building exports, from the contract ---------------------------------------------------------------


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chained(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row)).hexdigest()


class Ed25519Signer:
    algorithm = "ed25519"

    def __init__(self) -> None:
        self.private = ed25519.Ed25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


class P256Signer:
    algorithm = "ecdsa-p256-sha256"

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        # cryptography gives a DER signature; Key Vault's ES256 (and the contract) is the raw r || s.
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def fingerprint(signer) -> str:
    return hashlib.sha256(signer.public).hexdigest()


def header_key(signer) -> dict:
    return {
        "algorithm": signer.algorithm,
        "public_key": base64.b64encode(signer.public).decode(),
        "fingerprint": fingerprint(signer),
    }


def checkpoint_line(signer, *, checkpoint: int, case_id: object, case_sequence: int, case_hash: str) -> dict:
    statement = canonical(
        {
            "format": "custodia-case-checkpoint/1",
            "checkpoint": checkpoint,
            "case": case_id,
            "case_sequence": case_sequence,
            "case_hash": case_hash,
            "signed_at": f"2026-12-04T10:{checkpoint % 60:02d}:00.000000Z",
            "key_fingerprint": fingerprint(signer),
        }
    )
    return {
        "type": "checkpoint",
        "statement": statement.decode("utf-8"),
        "signature": base64.b64encode(signer.sign(statement)).decode(),
        "algorithm": signer.algorithm,
        "key_fingerprint": fingerprint(signer),
    }


def global_rows(case_events: int, case_id: int = CASE_ID) -> list[dict]:
    """A global chain in which every third row belongs to another case, so the case's events are sometimes
    consecutive in the global chain and sometimes not. Each row carries its prev_hash and hash."""
    rows, prev_hash, sequence, mine = [], GENESIS, 0, 0
    while mine < case_events:
        sequence += 1
        ours = sequence % 3 != 0
        mine += ours
        first = ours and mine == 1
        row = {
            "sequence": sequence,
            "occurred_at": f"2026-12-04T09:{sequence // 60 % 60:02d}:{sequence % 60:02d}.{sequence % 10**6:06d}Z",
            "actor_id": 3,
            "actor": "custodian-ä",
            "organization_id": 1,
            "action": "case.create" if first else "evidence.read",
            "target_type": "case" if first else "evidence",
            "target_id": str(case_id if first else 100 + sequence % 5),
            "case_id": case_id if ours else OTHER_CASE_ID,
            "outcome": "success",
            "request_id": f"req-{sequence}",
            "client_address": "192.0.2.10",
            "details": {"reference": REFERENCE, "title": "Einbruch — Lager"} if first else {"bytes": sequence},
        }
        digest = chained(prev_hash, row)
        rows.append({"row": row, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    return rows


def case_events(rows: list[dict], case_id: int = CASE_ID) -> list[dict]:
    events, case_prev = [], GENESIS
    for entry in rows:
        if entry["row"]["case_id"] != case_id:
            continue
        event = {"type": "event", **entry, "case_sequence": len(events) + 1, "case_prev_hash": case_prev}
        event["case_hash"] = chained(case_prev, entry["row"])
        case_prev = event["case_hash"]
        events.append(event)
    return events


def rechain(events: list[dict], start: int = 0) -> None:
    """What a forger without the key does after changing events: recompute every later link and hash."""
    case_prev = events[start - 1]["case_hash"] if start else GENESIS
    for position in range(start, len(events)):
        event = events[position]
        event["case_sequence"] = position + 1
        event["case_prev_hash"] = case_prev
        event["hash"] = chained(event["prev_hash"], event["row"])
        event["case_hash"] = case_prev = chained(case_prev, event["row"])


@dataclass
class Export:
    signer: object
    header: dict
    events: list[dict]
    checkpoints: list[dict] = field(default_factory=list)

    def records(self) -> list[dict]:
        return [self.header, *self.events, *self.checkpoints]

    def data(self) -> bytes:
        return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in self.records())

    def sign(self, case_sequence: int, checkpoint: int, signer=None, case_id: object = CASE_ID) -> dict:
        return checkpoint_line(
            signer or self.signer,
            checkpoint=checkpoint,
            case_id=case_id,
            case_sequence=case_sequence,
            case_hash=self.events[case_sequence - 1]["case_hash"],
        )


def build_export(*, events: int = 12, every: int = 4, tail: int = 2, signer=None) -> Export:
    """``events`` events; a statement after every ``every`` events, and none for the last ``tail``."""
    signer = signer or Ed25519Signer()
    header = {
        "type": "export",
        "format": "custodia-audit-export/1",
        "case": {"id": CASE_ID, "reference": REFERENCE},
        "exported_at": "2026-12-04T23:59:59.123456Z",
        "keys": [header_key(signer)],
    }
    export = Export(signer, header, case_events(global_rows(events)))
    covered = [k for k in range(every, events + 1, every) if k <= events - tail]
    # Checkpoint numbers are global: a case statement exists only for checkpoints where the case advanced.
    export.checkpoints = [export.sign(k, checkpoint=3 * index + 2) for index, k in enumerate(covered)]
    return export


def verify(data: bytes, key: str | None = None) -> ov.Report:
    return ov.verify_export(io.BytesIO(data), expected_fingerprint=key)


@pytest.fixture(scope="module")
def isolated_verifier(tmp_path_factory) -> Path:
    """The file alone in an empty directory, as the expert receives it."""
    path = tmp_path_factory.mktemp("expert") / "offline_verify.py"
    shutil.copy(VERIFIER, path)
    return path


def run_cli(verifier: Path, data: bytes | None, *arguments: str) -> subprocess.CompletedProcess:
    export = verifier.parent / "export.jsonl"
    if data is not None:
        export.write_bytes(data)
    return subprocess.run(
        [sys.executable, "-I", "-S", str(verifier), str(export), *arguments],
        capture_output=True,
        text=True,
        cwd=verifier.parent,
        timeout=120,
        check=False,
    )


def messages(report: ov.Report) -> str:
    return "\n".join(str(problem) for problem in report.problems)


# --- Acceptance ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_class", [Ed25519Signer, P256Signer])
def test_an_untouched_export_verifies_from_the_command_line(isolated_verifier, signer_class):
    export = build_export(signer=signer_class())
    result = run_cli(isolated_verifier, export.data(), "--key", fingerprint(export.signer))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED: events 1..8" in result.stdout
    assert "not yet checkpointed: 4 rows" in result.stdout
    assert "as created at line 2" in result.stdout
    assert result.stderr == ""


def test_the_report_is_data():
    export = build_export(events=10, every=3, tail=1)
    report = verify(export.data(), fingerprint(export.signer))
    assert report.verified and report.exit_code == 0
    assert (report.events, report.checkpoints, report.signed_through, report.not_yet_checkpointed) == (10, 3, 9, 1)
    assert report.newest_checkpoint == 8
    assert report.as_dict()["keys"] == [
        {"algorithm": "ed25519", "fingerprint": fingerprint(export.signer), "pinned": True}
    ]
    # str lines work as well as bytes, with or without their line ends.
    assert ov.verify_export([json.dumps(r) for r in export.records()], expected_fingerprint=None).verified


def test_without_key_the_report_says_the_key_is_not_pinned(isolated_verifier):
    result = run_cli(isolated_verifier, build_export().data())
    assert result.returncode == 0
    assert "NOT PINNED" in result.stdout


def test_the_command_line_can_print_the_report_as_json(isolated_verifier):
    result = run_cli(isolated_verifier, build_export().data(), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert (report["verified"], report["events"], report["signed_through"], report["not_yet_checkpointed"]) == (
        True,
        12,
        8,
        4,
    )


def test_an_export_of_a_case_without_events_verifies():
    export = build_export()
    export.events, export.checkpoints = [], []
    report = verify(export.data())
    assert report.verified
    assert "VERIFIED: the export holds no events" in report.text()


def test_a_fully_checkpointed_export_has_no_unsigned_rows():
    report = verify(build_export(events=8, every=4, tail=0).data())
    assert report.verified and report.not_yet_checkpointed == 0


def test_an_export_without_checkpoints_is_not_verified():
    export = build_export()
    export.checkpoints = []
    report = verify(export.data())
    assert report.exit_code == 1
    assert "no checkpoint: none of the 12 events is signed" in messages(report)


# --- Rejections ----------------------------------------------------------------------------------------


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


@pytest.mark.parametrize("signer_class", [Ed25519Signer, P256Signer])
def test_every_one_byte_edit_is_rejected(signer_class):
    """Every byte of the export, flipped, is caught, except the export time: nothing signs when the export
    was made (the header says so in the report)."""
    export = build_export(events=5, every=2, tail=1, signer=signer_class())
    data = export.data()
    time = data.index(b"2026-12-04T23:59:59.123456Z")
    unsigned = range(time, time + len("2026-12-04T23:59:59.123456Z"))
    assert verify(data).verified
    missed = [
        position for position in range(len(data)) if position not in unsigned and verify(flip(data, position)).verified
    ]
    assert missed == []


def test_a_one_byte_edit_names_the_line(isolated_verifier):
    data = build_export().data()
    lines = data.split(b"\n")
    position = len(b"\n".join(lines[:4])) + 1 + lines[4].index(b"evidence.read") + 2  # in line 5's row
    result = run_cli(isolated_verifier, flip(data, position))
    assert result.returncode == 1
    assert "line 5: its content does not hash to its case_hash (the line was edited)" in result.stdout
    assert "NOT VERIFIED" in result.stdout


def test_an_edited_global_hash_is_caught():
    export = build_export()
    export.events[3]["prev_hash"] = "f" * 64
    assert "line 5: its content does not hash to its global hash" in messages(verify(export.data()))


def test_a_deleted_line_is_caught(isolated_verifier):
    export = build_export()
    del export.events[4]
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert "line 6: case_sequence jumps from 4 (line 5) to 6: 1 event(s) missing (a deleted line)" in result.stdout


def test_a_deleted_first_event_is_caught():
    export = build_export()
    del export.events[0]
    report = verify(export.data())
    assert "line 2: the case chain starts at case_sequence 2, not 1" in messages(report)


def test_a_reordering_is_caught(isolated_verifier):
    export = build_export()
    export.events[2], export.events[3] = export.events[3], export.events[2]
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert "line 4: case_sequence jumps from 2 (line 3) to 4" in result.stdout
    assert "line 5: case_sequence 3 comes after 4 (line 4): out of order" in result.stdout


def test_a_renumbered_reordering_is_caught():
    """Moving a row and renumbering the case sequence still breaks the links."""
    export = build_export()
    export.events[2], export.events[3] = export.events[3], export.events[2]
    export.events[2]["case_sequence"], export.events[3]["case_sequence"] = 3, 4
    report = verify(export.data())
    assert "line 4: case_prev_hash does not link to line 3's case_hash" in messages(report)


def test_a_truncated_tail_is_caught(isolated_verifier):
    export = build_export(events=12, every=4, tail=0)
    del export.events[9:]
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert "truncated: the export ends at 9 but checkpoint 8 covers up to 12" in result.stdout


def test_a_checkpoint_signed_by_another_key_is_caught(isolated_verifier):
    export = build_export()
    intruder = Ed25519Signer()
    # The statement is the real one, the signature comes from another key.
    forged = dict(export.checkpoints[-1], signature=base64.b64encode(intruder.sign(b"x")).decode())
    statement = export.checkpoints[-1]["statement"].encode()
    forged["signature"] = base64.b64encode(intruder.sign(statement)).decode()
    export.checkpoints[-1] = forged
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert "line 15: the signature does not verify under key" in result.stdout


def test_a_checkpoint_naming_a_key_not_in_the_header_is_caught():
    export = build_export()
    export.checkpoints[0] = export.sign(4, checkpoint=2, signer=Ed25519Signer())
    assert "which is not among the export's keys" in messages(verify(export.data()))


@pytest.mark.parametrize("signer_class", [Ed25519Signer, P256Signer])
def test_an_export_re_signed_with_another_key_fails_against_the_organisations_key(isolated_verifier, signer_class):
    organisation, forger = Ed25519Signer(), signer_class()
    export = build_export(signer=forger)
    result = run_cli(isolated_verifier, export.data(), "--key", fingerprint(organisation))
    assert result.returncode == 1
    assert f"line 1: the organisation's key {fingerprint(organisation)} (--key) is not among" in result.stdout
    assert f"line 14: signed by key {fingerprint(forger)}, not the organisation's key" in result.stdout


def test_a_forged_line_is_caught(isolated_verifier):
    export = build_export()
    forged = json.loads(json.dumps(export.events[5]))
    forged["row"]["action"] = "evidence.secret.reveal"
    export.events.insert(5, forged)
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert "line 7: its content does not hash to its case_hash" in result.stdout


def test_a_forged_line_with_a_recomputed_chain_is_caught_by_the_checkpoint():
    export = build_export()
    forged = json.loads(json.dumps(export.events[5]))
    forged["row"]["action"] = "evidence.secret.reveal"
    export.events.insert(5, forged)
    rechain(export.events, 5)
    report = verify(export.data())
    assert report.exit_code == 1
    assert "line 16: checkpoint 5 signs case_hash" in messages(report)
    assert "but the event at line 9 hashes to" in messages(report)


def test_an_edit_with_a_recomputed_chain_is_caught_by_the_checkpoint():
    export = build_export()
    export.events[1]["row"]["outcome"] = "denied"
    rechain(export.events, 1)
    assert "(the events up to it were rewritten)" in messages(verify(export.data()))


def test_a_statement_for_another_case_is_caught(isolated_verifier):
    export = build_export()
    export.checkpoints[0] = export.sign(4, checkpoint=2, case_id=OTHER_CASE_ID)
    result = run_cli(isolated_verifier, export.data())
    assert result.returncode == 1
    assert f"line 14: a statement for case {OTHER_CASE_ID}, not this export's case {CASE_ID}" in result.stdout


def test_a_global_statement_is_not_a_case_statement():
    export = build_export()
    statement = canonical(
        {"format": "custodia-checkpoint/1", "checkpoint": 2, "sequence": 9, "hash": "a" * 64}
        | {
            "signed_at": "2026-12-04T10:00:00.000000Z",
            "previous": GENESIS,
            "key_fingerprint": fingerprint(export.signer),
        }
    )
    export.checkpoints[0] = dict(
        export.checkpoints[0],
        statement=statement.decode(),
        signature=base64.b64encode(export.signer.sign(statement)).decode(),
    )
    assert "line 14: malformed checkpoint: the statement lacks case, case_sequence, case_hash" in messages(
        verify(export.data())
    )


def test_checkpoints_out_of_order_are_caught():
    export = build_export()
    export.checkpoints.reverse()
    report = verify(export.data())
    assert "line 15: checkpoint 2 comes after checkpoint 5 (line 14): checkpoints must increase" in messages(report)


def test_an_event_of_another_case_is_caught():
    export = build_export()
    stranger = case_events(global_rows(3), case_id=CASE_ID)[2]
    stranger["row"]["case_id"] = OTHER_CASE_ID
    export.events[-1] = stranger
    rechain(export.events, len(export.events) - 1)
    assert f"line 13: an event of case {OTHER_CASE_ID} in the export of case {CASE_ID}" in messages(
        verify(export.data())
    )


def test_an_edited_reference_in_the_header_is_caught():
    export = build_export()
    export.header["case"]["reference"] = "2026-0043"
    assert "line 1: the header names case reference '2026-0043', but the case was created as" in messages(
        verify(export.data())
    )


def test_an_unhashed_field_in_a_row_is_caught():
    export = build_export()
    export.events[2]["row"]["note"] = "added later"
    assert "line 4: malformed event: the event's row has fields no hash covers: note" in messages(verify(export.data()))


def test_an_event_after_the_checkpoints_is_caught():
    export = build_export()
    data = export.data() + json.dumps(export.events[-1]).encode() + b"\n"
    assert "line 16: an event line after the checkpoint lines" in messages(verify(data))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"this is not json", "line 4: malformed line: not valid JSON (Expecting value, column 1)"),
        (b"\xff\xfe{}", "line 4: malformed line: not UTF-8 (byte 1)"),
        (b"[1, 2]", "line 4: malformed line: not an event or a checkpoint (type None)"),
        (b'{"type": "event"}', "line 4: malformed event: the event lacks row, prev_hash, hash"),
        (b'{"type": "event", "type": "event"}', "line 4: malformed line: the key 'type' appears twice"),
        (b'{"type": "checkpoint", "n": NaN}', "line 4: malformed line: not valid JSON (NaN is not a JSON number)"),
        (b'{"type": "checkpoint"}', "line 4: malformed checkpoint: the checkpoint lacks statement"),
        (b"", "line 4: an empty line inside the export"),
        (b"[" * 100000, "line 4: malformed line: not valid JSON"),
    ],
)
def test_a_malformed_line_is_named_without_a_traceback(isolated_verifier, line, expected):
    lines = build_export().data().split(b"\n")
    lines[3] = line
    result = run_cli(isolated_verifier, b"\n".join(lines))
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "UNUSABLE INPUT: the export is empty"),
        (b"\n\n", "UNUSABLE INPUT: the export is empty"),
        (b"hello\n", "UNUSABLE INPUT: line 1 is not a Custodia export header: not valid JSON"),
        (
            b'{"type": "export", "format": "other/1", "case": {}, "exported_at": "", "keys": []}\n',
            "this verifier reads",
        ),
        (
            b'{"type": "export", "format": "custodia-audit-export/1", "case": 7, "exported_at": "", "keys": []}\n',
            "names no case id",
        ),
    ],
)
def test_unusable_input_exits_2(isolated_verifier, data, expected):
    result = run_cli(isolated_verifier, data)
    assert result.returncode == 2
    assert expected in result.stdout
    assert result.stderr == ""


def test_a_missing_file_or_a_bad_fingerprint_exits_2(isolated_verifier):
    (isolated_verifier.parent / "export.jsonl").unlink(missing_ok=True)
    result = run_cli(isolated_verifier, None)
    assert result.returncode == 2 and "UNUSABLE INPUT: cannot read" in result.stdout
    result = run_cli(isolated_verifier, build_export().data(), "--key", "abc")
    assert result.returncode == 2 and "is not a sha256 fingerprint" in result.stdout


def test_a_tampered_header_key_is_caught():
    export = build_export()
    export.header["keys"][0]["public_key"] = base64.b64encode(Ed25519Signer().public).decode()
    assert "line 1: key 1's fingerprint" in messages(verify(export.data()))


# --- Ed25519 (RFC 8032 section 7.1) --------------------------------------------------------------------

RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(secret, public, message, signature):
    public_key, message, signature = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    # The vectors themselves, checked against cryptography (Ed25519 signatures are deterministic).
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public_key
    assert private.sign(message) == signature

    key = ov.Ed25519PublicKey.load(public_key)
    assert key.verify(signature, message)
    assert not key.verify(signature, message + b"\x00")
    for position in (0, 31, 32, 63):  # R and S, first and last byte
        assert not key.verify(flip(signature, position), message)
    # S + L is the same scalar, but RFC 8032 requires S < L (no malleable second signature).
    s = int.from_bytes(signature[32:], "little") + ov.ED_L
    assert not key.verify(signature[:32] + s.to_bytes(32, "little"), message)
    assert not key.verify(signature[:63], message)


def test_ed25519_agrees_with_cryptography_on_random_keys():
    for length in (0, 1, 100, 1000):
        signer = Ed25519Signer()
        message = bytes(range(256)) * (length // 256) + bytes(length % 256)
        key = ov.Ed25519PublicKey.load(signer.public)
        assert key.verify(signer.sign(message), message)
        assert not key.verify(Ed25519Signer().sign(message), message)


def test_ed25519_rejects_keys_that_are_not_points():
    assert ov.Ed25519PublicKey.load(b"\x00" * 31) is None
    # y = p is not canonical; y = 2 has no x on the curve.
    assert ov.Ed25519PublicKey.load(ov.ED_P.to_bytes(32, "little")) is None
    assert ov.Ed25519PublicKey.load((2).to_bytes(32, "little")) is None


# --- ECDSA P-256 with SHA-256 --------------------------------------------------------------------------

# RFC 6979 A.2.5: the P-256 key and its SHA-256 signatures of "sample" and "test".
RFC6979_X = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
RFC6979_Y = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
RFC6979_SIGNATURES = [
    (
        b"sample",
        0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
        0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8,
    ),
    (
        b"test",
        0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
        0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083,
    ),
]


def rfc6979_key() -> ov.P256PublicKey:
    public = ec.EllipticCurvePublicNumbers(RFC6979_X, RFC6979_Y, ec.SECP256R1()).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ov.P256PublicKey.load(der)


def raw(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(("message", "r", "s"), RFC6979_SIGNATURES)
def test_p256_known_signatures(message, r, s):
    key = rfc6979_key()
    n = ov.P256_N
    assert key.verify(raw(r, s), message)
    assert not key.verify(raw(r, s), message + b"!")
    assert not key.verify(flip(raw(r, s), 63), message)  # a flipped bit in s
    assert not key.verify(flip(raw(r, s), 0), message)  # a flipped bit in r
    # (r, n - s) is also valid ECDSA: the verifier, like FIPS 186, accepts both.
    assert key.verify(raw(r, n - s), message)
    for bad_r, bad_s in ((r, 0), (0, s), (r + n, s), (r, s + n), (n, s), (r, n)):
        if bad_r < 2**256 and bad_s < 2**256:
            assert not key.verify(raw(bad_r, bad_s), message), (bad_r, bad_s)
    assert not key.verify(raw(r, s)[:63], message)


def test_p256_agrees_with_cryptography_on_random_keys():
    for message in (b"", b"statement", bytes(1000)):
        signer = P256Signer()
        key = ov.P256PublicKey.load(signer.public)
        assert key.verify(signer.sign(message), message)
        assert not key.verify(P256Signer().sign(message), message)


def test_p256_reads_a_compressed_point_and_rejects_other_shapes():
    public = rfc6979_key().point
    compressed = ec.EllipticCurvePublicNumbers(*public, ec.SECP256R1()).public_key()
    der = compressed.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ov.p256_point_from_spki(der) == public
    short = compressed.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    prefix = bytes.fromhex("3039") + ov.P256_ALGORITHM_DER + bytes.fromhex("032200")
    assert ov.p256_point_from_spki(prefix + short) == public
    off_curve = bytearray(der)
    off_curve[-1] ^= 1
    assert ov.P256PublicKey.load(bytes(off_curve)) is None
    assert ov.P256PublicKey.load(der[:-1]) is None
    ed_key = ed25519.Ed25519PrivateKey.generate().public_key()
    spki = ed_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ov.P256PublicKey.load(spki) is None


# --- It stays standalone and agrees with Custodia ------------------------------------------------------


def test_the_verifier_imports_only_the_standard_library():
    tree = ast.parse(VERIFIER.read_text(), filename=str(VERIFIER))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import ties the file to Custodia's package"
            imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__"} == set()


def test_the_verifier_hashes_rows_exactly_as_the_chain_does():
    assert ov.HASHED_FIELDS == chain.HASHED_FIELDS
    assert ov.GENESIS_HASH == chain.GENESIS_HASH
    row = global_rows(1)[0]["row"]
    assert ov.canonical_json(row) == chain.canonical_json(row)
    assert ov.chained_hash(GENESIS, ov.canonical_json(row)) == chain.row_hash(row, GENESIS)
