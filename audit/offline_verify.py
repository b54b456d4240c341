#!/usr/bin/env python3
"""Verify a Custodia case audit export offline, with Python's standard library alone.

    python3 offline_verify.py EXPORT.jsonl [--key FINGERPRINT]

This file is handed to whoever must check a case's audit trail without trusting Custodia, its database or
its administrators (a defence expert, a court's examiner). It imports nothing but the standard library and
nothing of Custodia: read it, copy it, run it on any machine with Python 3.11 or later.

What it checks (the export format is "custodia-audit-export/1", one JSON object a line):

* line 1 is the export header: the case, and the public keys with their fingerprints (sha256 of the key);
* every event line: the case's own chain, from GENESIS, case_sequence 1, 2, ... N with no gap, each
  case_prev_hash equal to the case_hash of the line before, each case_hash recomputed from the event's
  content; and each event's global hash recomputed from its content and its prev_hash;
* every checkpoint line: its signature (Ed25519, RFC 8032; or ECDSA P-256 with SHA-256) under a key of the
  header whose fingerprint it names, and under the organisation's key when ``--key`` gives it; that it is a
  statement for this case; that the (case_sequence, case_hash) it signs is the export's event at that
  case_sequence; that checkpoints come in increasing order; and that no checkpoint covers more events than
  the export holds (a truncated tail).

Events after the newest checkpoint are reported as "not yet checkpointed": nothing signs them yet.
Exit status: 0 verified, 1 not verified (every problem names its line and why), 2 unusable input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

EXPORT_FORMAT = "custodia-audit-export/1"
CASE_STATEMENT_FORMAT = "custodia-case-checkpoint/1"
GLOBAL_STATEMENT_FORMAT = "custodia-checkpoint/1"
GENESIS_HASH = "0" * 64
ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"

# A copy of audit.chain.HASHED_FIELDS, on purpose: this file must not import Custodia. The test suite
# checks that the two stay equal.
HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor",
    "organization_id",
    "action",
    "target_type",
    "target_id",
    "case_id",
    "outcome",
    "request_id",
    "client_address",
    "details",
)
HASHED_FIELD_SET = frozenset(HASHED_FIELDS)
HEADER_FIELDS = ("type", "format", "case", "exported_at", "keys")
EVENT_FIELDS = ("row", "prev_hash", "hash", "case_sequence", "case_prev_hash", "case_hash")
CHECKPOINT_FIELDS = ("statement", "signature", "algorithm", "key_fingerprint")
HEX64 = re.compile(r"[0-9a-f]{64}")

# How many problems the text report lists before it summarises the rest.
PROBLEMS_SHOWN = 50


# json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False), with the encoder made once
# (json.dumps builds a new one on every call when given options).
CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(row: dict) -> bytes:
    """The bytes a row is hashed over: exactly audit.chain.canonical_json of Custodia."""
    return CANONICAL_ENCODER.encode(row).encode("utf-8")


def chained_hash(prev_hash: str, canonical_row: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_row).hexdigest()


# --------------------------------------------------------------------------------------------------------
# Ed25519 verification (RFC 8032 section 5.1.7), twisted Edwards curve in extended coordinates.
#
# Speed matters (a 100,000-event export carries about a thousand statements): every fixed point (the base
# point B and the negation of each public key) gets a table of its multiples j * 16^i (j < 16) in affine
# "Niels" form (y+x, y-x, 2dxy), so a scalar multiplication is at most 64 mixed additions and no doubling.

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_D2 = 2 * ED_D % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)
ED_IDENTITY = (0, 1, 1, 0)


def ed_add(P: tuple, Q: tuple) -> tuple:
    """Extended + extended (add-2008-hwcd-3, complete for this curve)."""
    p = ED_P
    X1, Y1, Z1, T1 = P
    X2, Y2, Z2, T2 = Q
    A = (Y1 - X1) * (Y2 - X2) % p
    B = (Y1 + X1) * (Y2 + X2) % p
    C = T1 * ED_D2 * T2 % p
    D = 2 * Z1 * Z2 % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def ed_double(P: tuple) -> tuple:
    """dbl-2008-hwcd for a = -1."""
    p = ED_P
    X1, Y1, Z1, _ = P
    A = X1 * X1 % p
    B = Y1 * Y1 % p
    C = 2 * Z1 * Z1 % p
    H = A + B
    E = H - (X1 + Y1) * (X1 + Y1) % p
    G = A - B
    F = C + G
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def ed_add_niels(P: tuple, N: tuple) -> tuple:
    """Extended + affine Niels (y+x, y-x, 2dxy): seven multiplications."""
    p = ED_P
    X1, Y1, Z1, T1 = P
    yplusx, yminusx, xy2d = N
    A = (Y1 - X1) * yminusx % p
    B = (Y1 + X1) * yplusx % p
    C = T1 * xy2d % p
    D = 2 * Z1
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def batch_inverse(values: list[int], modulus: int) -> list[int]:
    """Montgomery's trick: n inverses for one modular exponentiation."""
    prefix = []
    running = 1
    for value in values:
        prefix.append(running)
        running = running * value % modulus
    inverse = pow(running, modulus - 2, modulus)
    result = [0] * len(values)
    for index in range(len(values) - 1, -1, -1):
        result[index] = inverse * prefix[index] % modulus
        inverse = inverse * values[index] % modulus
    return result


def ed_table(point: tuple) -> list[list[tuple]]:
    """table[i][j] = j * 16^i * point in affine Niels form, for i < 64 and j < 16 (j = 0 unused)."""
    rows = []
    base = point
    for _ in range(64):
        multiples = [base]
        for _ in range(14):
            multiples.append(ed_add(multiples[-1], base))
        rows.append(multiples)
        for _ in range(4):
            base = ed_double(base)
    flat = [point for row in rows for point in row]
    inverses = batch_inverse([Z for (_, _, Z, _) in flat], ED_P)
    niels = []
    for (X, Y, _, _), zi in zip(flat, inverses, strict=True):
        x, y = X * zi % ED_P, Y * zi % ED_P
        niels.append(((y + x) % ED_P, (y - x) % ED_P, x * y % ED_P * ED_D2 % ED_P))
    return [[(1, 1, 0), *niels[i * 15 : (i + 1) * 15]] for i in range(64)]


def ed_decode(encoded: bytes) -> tuple | None:
    """RFC 8032 5.1.3: a 32-byte encoding to an extended point, None when it is not one."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= ED_P:
        return None
    u = (y * y - 1) % ED_P
    v = (ED_D * y * y + 1) % ED_P
    x = u * pow(v, 3, ED_P) * pow(u * pow(v, 7, ED_P), (ED_P - 5) // 8, ED_P) % ED_P
    vxx = v * x * x % ED_P
    if vxx == (-u) % ED_P:
        x = x * ED_SQRT_M1 % ED_P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


def ed_encode(P: tuple) -> bytes:
    X, Y, Z, _ = P
    zi = pow(Z, ED_P - 2, ED_P)
    x, y = X * zi % ED_P, Y * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def fixed_base_sum(terms: list[tuple[list[list[tuple]], int]], add, identity):
    """Sum of scalar_k * point_k, each point given by its 16^i table."""
    accumulator = identity
    for table, scalar in terms:
        for row in table:
            digit = scalar & 15
            if digit:
                accumulator = add(accumulator, row[digit])
            scalar >>= 4
            if not scalar:
                break
    return accumulator


ED_BASE = ed_decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))
ED_BASE_TABLE: list[list[tuple]] | None = None


@dataclass(frozen=True)
class Ed25519PublicKey:
    encoded: bytes
    negated_table: list[list[tuple]]

    @classmethod
    def load(cls, encoded: bytes) -> Ed25519PublicKey | None:
        point = ed_decode(encoded)
        if point is None:
            return None
        X, Y, Z, T = point
        return cls(encoded, ed_table(((-X) % ED_P, Y, Z, (-T) % ED_P)))

    def verify(self, signature: bytes, message: bytes) -> bool:
        """RFC 8032 5.1.7, checking [S]B - [k]A == R by encoding (a non-canonical R never matches)."""
        global ED_BASE_TABLE
        if len(signature) != 64:
            return False
        s = int.from_bytes(signature[32:], "little")
        if s >= ED_L:
            return False
        if ED_BASE_TABLE is None:
            ED_BASE_TABLE = ed_table(ED_BASE)
        k = int.from_bytes(hashlib.sha512(signature[:32] + self.encoded + message).digest(), "little") % ED_L
        point = fixed_base_sum([(ED_BASE_TABLE, s), (self.negated_table, k)], ed_add_niels, ED_IDENTITY)
        return ed_encode(point) == signature[:32]


# --------------------------------------------------------------------------------------------------------
# ECDSA P-256 with SHA-256 verification (FIPS 186-4 section 6.4.2), Jacobian coordinates, the same fixed
# tables of 16^i multiples (affine) for the generator and for each public key.

P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
P256_INFINITY = (1, 1, 0)
# DER of the SubjectPublicKeyInfo algorithm: SEQUENCE { id-ecPublicKey, prime256v1 }.
P256_ALGORITHM_DER = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")


def p256_on_curve(x: int, y: int) -> bool:
    p = P256_P
    return 0 <= x < p and 0 <= y < p and (y * y - (x * x * x - 3 * x + P256_B)) % p == 0


def p256_double(P: tuple) -> tuple:
    """dbl-2001-b for a = -3."""
    p = P256_P
    X1, Y1, Z1 = P
    if Z1 == 0 or Y1 == 0:
        return P256_INFINITY
    delta = Z1 * Z1 % p
    gamma = Y1 * Y1 % p
    beta = X1 * gamma % p
    alpha = 3 * (X1 - delta) * (X1 + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Z3 = ((Y1 + Z1) * (Y1 + Z1) - gamma - delta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return (X3, Y3, Z3)


def p256_add_affine(P: tuple, Q: tuple) -> tuple:
    """Jacobian + affine (madd-2007-bl), with the cases that formula does not cover."""
    p = P256_P
    X1, Y1, Z1 = P
    x2, y2 = Q
    if Z1 == 0:
        return (x2, y2, 1)
    Z1Z1 = Z1 * Z1 % p
    U2 = x2 * Z1Z1 % p
    S2 = y2 * Z1 * Z1Z1 % p
    H = (U2 - X1) % p
    r = 2 * (S2 - Y1) % p
    if H == 0:
        return p256_double(P) if r == 0 else P256_INFINITY
    HH = H * H % p
    I = 4 * HH % p  # noqa: E741 (the formula's own name)
    J = H * I % p
    V = X1 * I % p
    X3 = (r * r - J - 2 * V) % p
    Y3 = (r * (V - X3) - 2 * Y1 * J) % p
    Z3 = ((Z1 + H) * (Z1 + H) - Z1Z1 - HH) % p
    return (X3, Y3, Z3)


def p256_table(point: tuple[int, int]) -> list[list[tuple]]:
    """table[i][j] = j * 16^i * point in affine form, for i < 64 and j < 16 (j = 0 unused)."""
    rows = []
    base = point
    for _ in range(64):
        jacobian = [(base[0], base[1], 1)]
        for _ in range(14):
            jacobian.append(p256_add_affine(jacobian[-1], base))
        zs = [Z for (_, _, Z) in jacobian]
        row: list[tuple] = [(0, 0)]
        for (X, Y, _), zi in zip(jacobian, batch_inverse(zs, P256_P), strict=True):
            zi2 = zi * zi % P256_P
            row.append((X * zi2 % P256_P, Y * zi2 * zi % P256_P))
        rows.append(row)
        # 16 * base = 15 * base + base, already affine in the row.
        X, Y, Z = p256_add_affine((row[15][0], row[15][1], 1), base)
        zi = pow(Z, P256_P - 2, P256_P)
        base = (X * zi * zi % P256_P, Y * zi * zi * zi % P256_P)
    return rows


P256_G_TABLE: list[list[tuple]] | None = None


def der_read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One DER TLV at offset: (tag, contents, offset after it). Definite lengths only."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or offset + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[offset : offset + length], offset + length


def p256_point_from_spki(der: bytes) -> tuple[int, int]:
    """SubjectPublicKeyInfo { AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, BIT STRING point }."""
    tag, body, end = der_read(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER SEQUENCE")
    tag, algorithm, offset = der_read(body, 0)
    if tag != 0x30 or body[: offset - len(algorithm)] + algorithm != P256_ALGORITHM_DER:
        raise ValueError("not an EC P-256 key")
    tag, bits, offset = der_read(body, offset)
    if tag != 0x03 or offset != len(body) or not bits or bits[0] != 0:
        raise ValueError("bad BIT STRING")
    point = bits[1:]
    if len(point) == 65 and point[0] == 4:
        x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    elif len(point) == 33 and point[0] in (2, 3):
        x = int.from_bytes(point[1:], "big")
        y = pow((x * x * x - 3 * x + P256_B) % P256_P, (P256_P + 1) // 4, P256_P)
        if y & 1 != point[0] & 1:
            y = P256_P - y
    else:
        raise ValueError("unsupported point encoding")
    if not p256_on_curve(x, y):
        raise ValueError("the point is not on P-256")
    return x, y


@dataclass(frozen=True)
class P256PublicKey:
    point: tuple[int, int]
    table: list[list[tuple]]

    @classmethod
    def load(cls, der: bytes) -> P256PublicKey | None:
        try:
            point = p256_point_from_spki(der)
        except (ValueError, IndexError):
            return None
        return cls(point, p256_table(point))

    def verify(self, signature: bytes, message: bytes) -> bool:
        """ECDSA over SHA-256(message), the signature as r || s (32 bytes each, big-endian)."""
        global P256_G_TABLE
        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < P256_N and 0 < s < P256_N):
            return False
        if P256_G_TABLE is None:
            P256_G_TABLE = p256_table(P256_G)
        e = int.from_bytes(hashlib.sha256(message).digest(), "big")
        w = pow(s, -1, P256_N)
        u1, u2 = e * w % P256_N, r * w % P256_N
        X, _, Z = fixed_base_sum([(P256_G_TABLE, u1), (self.table, u2)], p256_add_affine, P256_INFINITY)
        if Z == 0:
            return False
        # x = X / Z^2; compare without inverting: x mod n == r means x is r or r + n (when below p).
        zz = Z * Z % P256_P
        return any(candidate * zz % P256_P == X for candidate in (r, r + P256_N) if candidate < P256_P)


@functools.lru_cache(maxsize=16)
def load_public_key(algorithm: str, encoded: bytes):
    """The key with its tables (kept: a session verifying several exports signed by one key builds them once)."""
    if algorithm == ED25519:
        return Ed25519PublicKey.load(encoded)
    if algorithm == ECDSA_P256_SHA256:
        return P256PublicKey.load(encoded)
    return None


# --------------------------------------------------------------------------------------------------------
# The report.


@dataclass(frozen=True)
class Problem:
    line: int | None  # the export's line number (1 is the header); None for the export as a whole
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


@dataclass
class Report:
    """What the verifier found, as data. ``exit_code``: 0 verified, 1 not verified, 2 unusable input."""

    unusable: str = ""
    case_id: object = None
    case_reference: object = None
    exported_at: object = None
    keys: list[dict] = field(default_factory=list)  # algorithm, fingerprint, pinned (equals --key)
    expected_fingerprint: str | None = None
    events: int = 0
    checkpoints: int = 0
    newest_checkpoint: int | None = None
    signed_through: int = 0  # the highest case_sequence a valid checkpoint signs
    reference_line: int | None = None  # the case.create event that confirms the header's reference
    problems: list[Problem] = field(default_factory=list)

    @property
    def not_yet_checkpointed(self) -> int:
        return max(self.events - self.signed_through, 0)

    @property
    def verified(self) -> bool:
        return not self.unusable and not self.problems

    @property
    def exit_code(self) -> int:
        if self.unusable:
            return 2
        return 0 if self.verified else 1

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(line, message))

    def as_dict(self) -> dict:
        return {
            "verified": self.verified,
            "exit_code": self.exit_code,
            "unusable": self.unusable,
            "case": {"id": self.case_id, "reference": self.case_reference, "reference_line": self.reference_line},
            "exported_at": self.exported_at,
            "keys": self.keys,
            "expected_fingerprint": self.expected_fingerprint,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "newest_checkpoint": self.newest_checkpoint,
            "signed_through": self.signed_through,
            "not_yet_checkpointed": self.not_yet_checkpointed,
            "problems": [{"line": p.line, "message": p.message} for p in self.problems],
        }

    def text(self) -> str:
        if self.unusable:
            return f"UNUSABLE INPUT: {self.unusable}\n"
        if self.reference_line is not None:
            confirmed = f"as created at line {self.reference_line}"
        else:
            confirmed = "no case.create event confirms it"
        out = [
            f"Custodia audit export of case {self.case_id}, reference {self.case_reference!r} ({confirmed}); "
            f"exported at {self.exported_at} (as the export states; the export time is not signed)"
        ]
        for key in self.keys:
            if self.expected_fingerprint is None:
                pin = "NOT PINNED: compare it with GET /api/audit/public-key and pass --key"
            else:
                pin = "the organisation's key (--key)" if key["pinned"] else "not the organisation's key"
            out.append(f"key: {key['algorithm']} {key['fingerprint']} ({pin})")
        out.append(f"events: {self.events}")
        if self.checkpoints:
            out.append(
                f"checkpoints: {self.checkpoints} statement(s); the newest, checkpoint {self.newest_checkpoint}, "
                f"signs events 1..{self.signed_through}"
            )
        else:
            out.append("checkpoints: none")
        if self.not_yet_checkpointed:
            out.append(
                f"not yet checkpointed: {self.not_yet_checkpointed} rows "
                f"(events {self.signed_through + 1}..{self.events}: no signature covers them, not verified)"
            )
        for problem in self.problems[:PROBLEMS_SHOWN]:
            out.append(str(problem))
        if len(self.problems) > PROBLEMS_SHOWN:
            out.append(f"... and {len(self.problems) - PROBLEMS_SHOWN} more problems")
        if self.verified and not self.events:
            out.append("VERIFIED: the export holds no events")
        elif self.verified:
            out.append(f"VERIFIED: events 1..{self.signed_through} are complete, unaltered and signed")
        else:
            out.append(f"NOT VERIFIED: {len(self.problems)} problem(s)")
        return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------
# The verifier.


class Malformed(ValueError):
    """A line that is not what the format says; the message says what is wrong."""


def reject_constant(name: str):
    raise Malformed(f"not valid JSON ({name} is not a JSON number)")


def reject_duplicate_keys(pairs: list[tuple]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise Malformed(f"the key {duplicate!r} appears twice in one object")
    return result


# Made once: json.loads builds a new decoder on every call when given options.
STRICT_DECODER = json.JSONDecoder(object_pairs_hook=reject_duplicate_keys, parse_constant=reject_constant)


def parse_json(text: str) -> object:
    try:
        return STRICT_DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise Malformed(f"not valid JSON ({error.msg}, column {error.colno})") from None
    except RecursionError:
        raise Malformed("not valid JSON (nested too deeply)") from None


def decode_line(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Malformed(f"not UTF-8 (byte {error.start + 1})") from None
    return raw.rstrip("\r\n")


def require_hex(value: object, name: str) -> str:
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise Malformed(f"{name} is not 64 lowercase hex digits")
    return value


def require_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{name} is not an integer")
    return value


def require_object(value: object, fields: Iterable[str], what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    missing = [name for name in fields if name not in value]
    if missing:
        raise Malformed(f"{what} lacks {', '.join(missing)}")
    return value


def b64decode(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise Malformed(f"{name} is not a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{name} is not valid base64") from None
    # Base64 has spare bits in its last character: without this, two texts would decode to one signature
    # and an edited byte could pass unnoticed.
    if base64.b64encode(decoded).decode("ascii") != value:
        raise Malformed(f"{name} is not in canonical base64")
    return decoded


@dataclass
class KnownKey:
    algorithm: str
    public_key: object  # Ed25519PublicKey | P256PublicKey


class ExportVerifier:
    """Reads an export line by line, in one pass, keeping only what the checkpoints need afterwards: the
    case_hash of each case_sequence."""

    def __init__(self, expected_fingerprint: str | None):
        self.report = Report(expected_fingerprint=expected_fingerprint)
        self.case_id: object = None
        self.keys: dict[str, KnownKey] = {}
        # Per event, in case_sequence order: (case_sequence, the case_hash its content hashes to, line).
        self.case_hashes: dict[int, tuple[str, int]] = {}
        self.previous_event: tuple | None = None  # (line, case_sequence, case_hash, sequence, hash)
        self.chain_unknown = False  # after a malformed event line, the next link cannot be judged
        self.in_checkpoints = False
        self.previous_checkpoint: tuple[int, int, int] | None = None  # (number, case_sequence, line)
        self.verified_signatures: dict[tuple, bool] = {}
        # The reference the case was created with (a case's reference never changes), and its line.
        self.created_reference: tuple[object, int] | None = None

    # The header ---------------------------------------------------------------------------------------

    def read_header(self, text: str) -> None:
        report = self.report
        try:
            header = require_object(parse_json(text), HEADER_FIELDS, "the header")
        except Malformed as error:
            report.unusable = f"line 1 is not a Custodia export header: {error}"
            return
        if header["type"] != "export" or header["format"] != EXPORT_FORMAT:
            report.unusable = (
                f"line 1 is not a Custodia export header (type {header['type']!r}, format {header['format']!r}; "
                f"this verifier reads {EXPORT_FORMAT!r})"
            )
            return
        case = header["case"]
        if not isinstance(case, dict) or "id" not in case:
            report.unusable = "line 1: the header names no case id"
            return
        unknown = sorted(set(header) - set(HEADER_FIELDS))
        if unknown:
            report.problem(1, f"the header has fields {EXPORT_FORMAT} does not define: {', '.join(unknown)}")
        self.case_id = case["id"]
        report.case_id, report.case_reference = case["id"], case.get("reference")
        report.exported_at = header["exported_at"]
        if not isinstance(header["keys"], list) or not header["keys"]:
            report.problem(1, "the header carries no public key: no checkpoint can be checked")
            return
        for index, entry in enumerate(header["keys"], start=1):
            self.read_header_key(index, entry)
        pinned = report.expected_fingerprint
        if pinned is not None and pinned not in self.keys:
            report.problem(
                1,
                f"the organisation's key {pinned} (--key) is not among the export's keys "
                f"({', '.join(self.keys) or 'none usable'}): the export was not signed by it",
            )

    def read_header_key(self, index: int, entry: object) -> None:
        report = self.report
        try:
            entry = require_object(entry, ("algorithm", "public_key", "fingerprint"), f"key {index}")
            encoded = b64decode(entry["public_key"], f"key {index}'s public_key")
        except Malformed as error:
            report.problem(1, str(error))
            return
        algorithm, fingerprint = entry["algorithm"], entry["fingerprint"]
        actual = hashlib.sha256(encoded).hexdigest()
        if fingerprint != actual:
            report.problem(1, f"key {index}'s fingerprint {fingerprint} is not the sha256 of its public key ({actual})")
            return
        if algorithm not in (ED25519, ECDSA_P256_SHA256):
            report.problem(1, f"key {index} has an unknown algorithm {algorithm!r}")
            return
        public_key = load_public_key(algorithm, encoded)
        if public_key is None:
            report.problem(1, f"key {index} is not a valid {algorithm} public key")
            return
        self.keys[fingerprint] = KnownKey(algorithm, public_key)
        report.keys.append(
            {"algorithm": algorithm, "fingerprint": fingerprint, "pinned": fingerprint == report.expected_fingerprint}
        )

    # Events ---------------------------------------------------------------------------------------------

    def read_event(self, number: int, line: dict) -> None:
        report = self.report
        report.events += 1
        try:
            require_object(line, EVENT_FIELDS, "the event")
            row = line["row"]
            if not isinstance(row, dict):
                raise Malformed("the event's row is not a JSON object")
            if row.keys() != HASHED_FIELD_SET:
                missing = sorted(HASHED_FIELD_SET - row.keys())
                extra = sorted(row.keys() - HASHED_FIELD_SET)
                raise Malformed(
                    "the event's row "
                    + "; ".join(
                        part
                        for part in (
                            f"lacks {', '.join(missing)}" if missing else "",
                            f"has fields no hash covers: {', '.join(extra)}" if extra else "",
                        )
                        if part
                    )
                )
            case_sequence = require_int(line["case_sequence"], "case_sequence")
            case_prev_hash = require_hex(line["case_prev_hash"], "case_prev_hash")
            case_hash = require_hex(line["case_hash"], "case_hash")
            prev_hash = require_hex(line["prev_hash"], "prev_hash")
            global_hash = require_hex(line["hash"], "hash")
            sequence = require_int(row["sequence"], "the row's sequence")
        except Malformed as error:
            report.problem(number, f"malformed event: {error}")
            self.chain_unknown = True
            return

        canonical = canonical_json(row)
        recomputed_case_hash = chained_hash(case_prev_hash, canonical)
        why = []
        if row["case_id"] != self.case_id:
            why.append(f"an event of case {row['case_id']!r} in the export of case {self.case_id!r}")
        if recomputed_case_hash != case_hash:
            why.append("its content does not hash to its case_hash (the line was edited)")
        elif chained_hash(prev_hash, canonical) != global_hash:
            why.append("its content does not hash to its global hash (the line was edited)")

        previous = self.previous_event
        if self.chain_unknown:
            pass
        elif previous is None:
            if case_sequence != 1:
                why.append(
                    f"the case chain starts at case_sequence {case_sequence}, not 1 "
                    f"({case_sequence - 1} event(s) missing before it)"
                    if case_sequence > 1
                    else f"case_sequence {case_sequence} is not a position in a chain that starts at 1"
                )
            elif case_prev_hash != GENESIS_HASH:
                why.append("the first event's case_prev_hash is not GENESIS (events before it are missing)")
        else:
            previous_line, previous_case_sequence, previous_case_hash, previous_sequence, previous_hash = previous
            if case_sequence > previous_case_sequence + 1:
                missing = case_sequence - previous_case_sequence - 1
                why.append(
                    f"case_sequence jumps from {previous_case_sequence} (line {previous_line}) to {case_sequence}: "
                    f"{missing} event(s) missing (a deleted line)"
                )
            elif case_sequence <= previous_case_sequence:
                why.append(
                    f"case_sequence {case_sequence} comes after {previous_case_sequence} (line {previous_line}): "
                    f"out of order (a moved or repeated line)"
                )
            elif case_prev_hash != previous_case_hash:
                why.append(
                    f"case_prev_hash does not link to line {previous_line}'s case_hash "
                    f"(a line was removed, inserted or replaced there)"
                )
            elif sequence <= previous_sequence:
                why.append(
                    f"global sequence {sequence} comes after {previous_sequence} (line {previous_line}): out of order"
                )
            elif sequence == previous_sequence + 1 and prev_hash != previous_hash:
                why.append(f"prev_hash does not link to line {previous_line}'s hash")

        if row["action"] == "case.create" and row["target_type"] == "case" and isinstance(row["details"], dict):
            self.created_reference = (row["details"].get("reference"), number)
        if why:
            report.problem(number, "; ".join(why))
        self.chain_unknown = False
        self.previous_event = (number, case_sequence, case_hash, sequence, global_hash)
        # The first event at a position is the one a checkpoint is compared with.
        self.case_hashes.setdefault(case_sequence, (recomputed_case_hash, number))

    # Checkpoints ----------------------------------------------------------------------------------------

    def read_checkpoint(self, number: int, line: dict) -> None:
        report = self.report
        report.checkpoints += 1
        try:
            require_object(line, CHECKPOINT_FIELDS, "the checkpoint")
            statement_text = line["statement"]
            if not isinstance(statement_text, str):
                raise Malformed("the statement is not a string")
            signature = b64decode(line["signature"], "the signature")
            algorithm, fingerprint = line["algorithm"], line["key_fingerprint"]
            statement = require_object(
                parse_json(statement_text),
                ("format", "checkpoint", "case", "case_sequence", "case_hash", "signed_at", "key_fingerprint"),
                "the statement",
            )
            if statement["format"] == GLOBAL_STATEMENT_FORMAT:
                raise Malformed("a global chain statement, not a case statement")
            if statement["format"] != CASE_STATEMENT_FORMAT:
                raise Malformed(f"the statement's format is {statement['format']!r}, not {CASE_STATEMENT_FORMAT!r}")
            checkpoint = require_int(statement["checkpoint"], "the statement's checkpoint")
            case_sequence = require_int(statement["case_sequence"], "the statement's case_sequence")
            signed_hash = require_hex(statement["case_hash"], "the statement's case_hash")
        except Malformed as error:
            report.problem(number, f"malformed checkpoint: {error}")
            return

        why = []
        signed = self.check_signature(statement_text, signature, algorithm, fingerprint, why)
        if statement["key_fingerprint"] != fingerprint:
            why.append(f"the statement names key {statement['key_fingerprint']}, the line names {fingerprint}")
        if statement["case"] != self.case_id:
            why.append(f"a statement for case {statement['case']!r}, not this export's case {self.case_id!r}")
        if self.previous_checkpoint is not None:
            previous_number, previous_case_sequence, previous_line = self.previous_checkpoint
            if checkpoint <= previous_number:
                why.append(
                    f"checkpoint {checkpoint} comes after checkpoint {previous_number} (line {previous_line}): "
                    f"checkpoints must increase"
                )
            elif case_sequence < previous_case_sequence:
                why.append(
                    f"checkpoint {checkpoint} covers up to {case_sequence}, less than the earlier "
                    f"checkpoint {previous_number} (line {previous_line}), which covers up to {previous_case_sequence}"
                )
        if case_sequence > report.events:
            why.append(
                f"truncated: the export ends at {report.events} "
                f"but checkpoint {checkpoint} covers up to {case_sequence}"
            )
        elif case_sequence < 1:
            why.append(f"checkpoint {checkpoint} covers up to case_sequence {case_sequence}, which no event has")
        else:
            at = self.case_hashes.get(case_sequence)
            if at is None:
                why.append(f"checkpoint {checkpoint} signs case_sequence {case_sequence}, which no event line has")
            elif at[0] != signed_hash:
                why.append(
                    f"checkpoint {checkpoint} signs case_hash {signed_hash} for case_sequence {case_sequence}, "
                    f"but the event at line {at[1]} hashes to {at[0]} (the events up to it were rewritten)"
                )
        self.previous_checkpoint = (checkpoint, case_sequence, number)
        if why:
            report.problem(number, "; ".join(why))
        elif signed:
            report.newest_checkpoint = checkpoint
            report.signed_through = max(report.signed_through, case_sequence)

    def check_signature(self, statement: str, signature: bytes, algorithm: object, fingerprint: object, why) -> bool:
        report = self.report
        known = self.keys.get(fingerprint) if isinstance(fingerprint, str) else None
        if known is None:
            why.append(f"signed by key {fingerprint}, which is not among the export's keys")
            return False
        if report.expected_fingerprint is not None and fingerprint != report.expected_fingerprint:
            why.append(f"signed by key {fingerprint}, not the organisation's key {report.expected_fingerprint}")
            return False
        if algorithm != known.algorithm:
            why.append(f"the line says {algorithm!r} but key {fingerprint} is {known.algorithm}")
            return False
        cache_key = (fingerprint, statement, signature)
        valid = self.verified_signatures.get(cache_key)
        if valid is None:
            valid = known.public_key.verify(signature, statement.encode("utf-8"))
            self.verified_signatures[cache_key] = valid
        if not valid:
            why.append(
                f"the signature does not verify under key {fingerprint} "
                f"(the statement or its signature was altered, or another key signed it)"
            )
        return valid

    # The whole export -----------------------------------------------------------------------------------

    def read(self, lines: Iterable[bytes | str]) -> Report:
        report = self.report
        blank_lines: list[int] = []
        number = 0
        for number, raw in enumerate(lines, start=1):
            try:
                text = decode_line(raw)
            except Malformed as error:
                if number == 1:
                    report.unusable = f"line 1: {error}"
                    return report
                report.problem(number, f"malformed line: {error}")
                continue
            if not text.strip():
                blank_lines.append(number)
                continue
            for blank in blank_lines:
                report.problem(blank, "an empty line inside the export")
            blank_lines.clear()
            if number == 1:
                self.read_header(text)
                if report.unusable:
                    return report
                continue
            self.read_line(number, text)
        if number == 0 or (number == len(blank_lines)):
            report.unusable = "the export is empty"
            return report
        if self.created_reference is not None:
            reference, line = self.created_reference
            if reference != report.case_reference:
                report.problem(
                    1,
                    f"the header names case reference {report.case_reference!r}, but the case was created "
                    f"as {reference!r} (line {line})",
                )
            else:
                report.reference_line = line
        if report.events and not report.checkpoints:
            report.problem(None, f"no checkpoint: none of the {report.events} events is signed")
        return report

    def read_line(self, number: int, text: str) -> None:
        report = self.report
        try:
            line = parse_json(text)
        except Malformed as error:
            report.problem(number, f"malformed line: {error}")
            self.chain_unknown = not self.in_checkpoints
            return
        kind = line.get("type") if isinstance(line, dict) else None
        if kind == "event":
            if self.in_checkpoints:
                report.problem(number, "an event line after the checkpoint lines (a line was moved or appended)")
                return
            self.read_event(number, line)
        elif kind == "checkpoint":
            self.in_checkpoints = True
            self.read_checkpoint(number, line)
        elif kind == "export":
            report.problem(number, "a second export header")
        else:
            report.problem(number, f"malformed line: not an event or a checkpoint (type {kind!r})")


def verify_export(lines: Iterable[bytes | str], *, expected_fingerprint: str | None) -> Report:
    """Verify the lines of a case export (bytes or str, with or without their line ends)."""
    if expected_fingerprint is not None:
        expected_fingerprint = expected_fingerprint.strip().lower()
    return ExportVerifier(expected_fingerprint).read(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="offline_verify.py",
        description="Verify a Custodia case audit export (JSON lines) with the standard library alone.",
    )
    parser.add_argument("export", help="the export file (JSON lines), or - for standard input")
    parser.add_argument(
        "--key",
        metavar="FINGERPRINT",
        help="the organisation's public key fingerprint (sha256 hex, from GET /api/audit/public-key): "
        "every checkpoint must be signed by it",
    )
    # A BooleanOptionalAction rather than "store_true": tests/audit/test_actions.py reads every string
    # passed as action= as an audit action name.
    parser.add_argument("--json", action=argparse.BooleanOptionalAction, default=False, help="print the report as JSON")
    arguments = parser.parse_args(argv)
    fingerprint = arguments.key
    if fingerprint is not None and not HEX64.fullmatch(fingerprint.strip().lower()):
        print(f"UNUSABLE INPUT: --key {fingerprint!r} is not a sha256 fingerprint (64 hex digits)")
        return 2
    try:
        if arguments.export == "-":
            report = verify_export(sys.stdin.buffer, expected_fingerprint=fingerprint)
        else:
            with open(arguments.export, "rb") as export:
                report = verify_export(export, expected_fingerprint=fingerprint)
    except OSError as error:
        print(f"UNUSABLE INPUT: cannot read {arguments.export}: {error.strerror or error}")
        return 2
    if arguments.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.text())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
