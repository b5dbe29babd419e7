"""Signed money-in entries (docs/contracts.md, Signed money-in entries): the canonical form,
the signature format, key ids and the keys read from PEM files.

    signature = "ed25519:" + key_id + ":" + base64(Ed25519(private, canonical(entry)))

`canonical` is the entry's JSON object without `signature`: keys sorted, no whitespace,
UTF-8, only `"`, `\\` and control characters escaped, integers in decimal. A key id is the
first 16 hex digits of SHA-256 over the raw 32-byte public key.

A retired key (docs/operations.md, Entry signing keys) is a public key PEM preceded by one
line `Retired-Below: 0=1200,1=980,...`: it verifies only entries below those ledger.v1
offsets (per partition; a partition not named: none), so the entries it signed before its
retirement stay valid in every replay while nothing written after it is accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

SIGNATURE_FIELD = "signature"
ALGORITHM = "ed25519"
RETIRED_HEADER = "Retired-Below:"
EntryT = TypeVar("EntryT", bound=BaseModel)


class EntryKeyError(ValueError):
    """A signing or verify key cannot be used; the service must not start."""


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: `fields` without `signature`, as described above.

    Python's json writes exactly that with these options (lowercase \\u00XX for control
    characters other than \\b \\f \\n \\r \\t). Raises ValueError for a float or a string
    that is not valid Unicode, which no money-in entry holds."""
    body = {name: value for name, value in fields.items() if name != SIGNATURE_FIELD}
    if any(isinstance(v, float) for v in body.values()):
        raise ValueError("a money-in entry holds no floats; its canonical form has none")
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
        default=_refuse,
    )  # fmt: skip
    return text.encode("utf-8")


def _refuse(value: object) -> None:
    raise ValueError(f"{type(value).__name__} has no canonical JSON form")


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The API's private key: signs each grant and adjustment it writes."""

    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        return cls(private, key_id(private.public_key()))

    def sign(self, fields: Mapping[str, Any]) -> str:
        signature = base64.b64encode(self.private.sign(canonical(fields))).decode()
        return f"{ALGORITHM}:{self.key_id}:{signature}"

    def verify_key(self) -> VerifyKey:
        public = self.private.public_key()
        return VerifyKey(public, self.key_id)

    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def signed(entry: EntryT, key: SigningKey) -> EntryT:
    """The entry with `key`'s signature over the very JSON it is written as."""
    signature = key.sign(json.loads(entry.model_dump_json()))
    return entry.model_copy(update={SIGNATURE_FIELD: signature})


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key the projector, the audit and the rebuild accept; `retired_below`
    (partition -> offset) when it is retired."""

    public: Ed25519PublicKey
    key_id: str
    retired_below: Mapping[int, int] | None = None

    def covers(self, partition: int, offset: int) -> bool:
        return self.retired_below is None or offset < self.retired_below.get(partition, 0)

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def retired_pem(self, below: Mapping[int, int]) -> bytes:
        """This key's file once retired at the ledger.v1 offsets `below`."""
        cut = ",".join(f"{p}={o}" for p, o in sorted(below.items()))
        return f"{RETIRED_HEADER} {cut}\n".encode() + self.public_pem()


@dataclass(frozen=True)
class VerifyKeys:
    """The configured verify keys by id."""

    by_id: Mapping[str, VerifyKey] = field(default_factory=dict)

    def refusal(self, fields: Mapping[str, Any], partition: int, offset: int) -> str | None:
        """Why the entry `fields` at (partition, offset) is not authentic, or None when its
        signature verifies with a configured key that covers that offset."""
        signature = fields.get(SIGNATURE_FIELD)
        if signature is None:
            return "unsigned: a grant or adjustment must carry the API's signature"
        algorithm, _, rest = str(signature).partition(":")
        kid, _, encoded = rest.partition(":")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if algorithm != ALGORITHM or not kid or len(raw) != 64:
            return "malformed signature: expected ed25519:<key id>:<base64 signature>"
        key = self.by_id.get(kid)
        if key is None:
            return f"signed with key {kid}, which is not a configured verify key"
        if not key.covers(partition, offset):
            return f"signed with key {kid}, retired before partition {partition} offset {offset}"
        try:
            key.public.verify(raw, canonical(fields))
        except (InvalidSignature, ValueError):
            return f"the signature does not match the entry's content (key {kid})"
        return None


def read_signing_key(path: Path | None) -> SigningKey:
    """LEDGER_ENTRY_SIGNING_KEY's key; EntryKeyError when it is not set or not usable."""
    if path is None or str(path) == "":
        raise EntryKeyError(
            "LEDGER_ENTRY_SIGNING_KEY is not set: the API signs every grant and adjustment "
            "with that Ed25519 private key (PEM); see docs/operations.md, Entry signing keys"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise EntryKeyError(f"LEDGER_ENTRY_SIGNING_KEY {path}: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise EntryKeyError(f"LEDGER_ENTRY_SIGNING_KEY {path}: not an Ed25519 private key")
    return SigningKey.of(key)


def read_verify_keys(paths: Sequence[Path]) -> VerifyKeys:
    """LEDGER_ENTRY_VERIFY_KEYS' keys; EntryKeyError when none is set or one is not usable."""
    if not paths:
        raise EntryKeyError(
            "LEDGER_ENTRY_VERIFY_KEYS is not set: grants and adjustments are verified with "
            "those Ed25519 public keys (PEM files, comma-separated); see docs/operations.md"
        )
    by_id: dict[str, VerifyKey] = {}
    for path in paths:
        key = read_verify_key(path)
        if key.key_id in by_id:  # as a key and as retired, say: which one holds is unclear
            raise EntryKeyError(f"LEDGER_ENTRY_VERIFY_KEYS names key {key.key_id} twice")
        by_id[key.key_id] = key
    return VerifyKeys(by_id)


def read_verify_key(path: Path) -> VerifyKey:
    try:
        return parse_verify_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise EntryKeyError(f"LEDGER_ENTRY_VERIFY_KEYS {path}: {error}") from error


def parse_verify_key(pem: bytes) -> VerifyKey:
    """A public key PEM, with the retirement line before it when the key is retired."""
    head, begin, body = pem.partition(b"-----BEGIN")
    key = serialization.load_pem_public_key(begin + body)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    below = None
    for line in head.decode().splitlines():
        if line.startswith(RETIRED_HEADER):
            below = parse_cut(line.removeprefix(RETIRED_HEADER))
    return VerifyKey(key, key_id(key), below)


def parse_cut(text: str) -> dict[int, int]:
    """`0=1200,1=980` -> {0: 1200, 1: 980}."""
    cut: dict[int, int] = {}
    for part in text.split(","):
        if part.strip():
            partition, _, offset = part.partition("=")
            cut[int(partition)] = int(offset)
    if any(p < 0 or o < 0 for p, o in cut.items()):
        raise ValueError(f"{RETIRED_HEADER} takes partition=offset pairs >= 0, not {text!r}")
    return cut


__all__ = [
    "ALGORITHM",
    "RETIRED_HEADER",
    "SIGNATURE_FIELD",
    "EntryKeyError",
    "SigningKey",
    "VerifyKey",
    "VerifyKeys",
    "canonical",
    "key_id",
    "parse_cut",
    "parse_verify_key",
    "read_signing_key",
    "read_verify_key",
    "read_verify_keys",
    "signed",
]
