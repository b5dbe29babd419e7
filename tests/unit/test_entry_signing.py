"""Signed money-in entries: the canonical form, signing and verifying, key ids, key files
(schemas/entry_signing.py), and where the projector classifies an entry (read_message)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from schemas.entry_signing import (
    EntryKeyError,
    SigningKey,
    VerifyKeys,
    canonical,
    key_id,
    parse_verify_key,
    read_signing_key,
    read_verify_keys,
    signed,
)
from schemas.events import CreditsAdjusted, CreditsGranted, dump
from services.common.entry_keys import write_pair
from services.projector.ledger import RejectedMessage, SourcedEntry, read_message
from tests.entry_keys import SIGNING_KEY, VERIFY_KEYS
from tests.factories import adjusted, any_entry, debited, granted

pytestmark = pytest.mark.unit

OTHER_KEY = SigningKey.of(Ed25519PrivateKey.generate())
# NUL, which PostgreSQL text cannot hold, is refused before any signature is looked at.
money_in = any_entry.filter(
    lambda e: isinstance(e, CreditsGranted | CreditsAdjusted) and b"\\u0000" not in dump(e)
)


def fields_of(entry: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dump(entry))
    return loaded


def test_the_canonical_form_is_sorted_compact_utf8_without_the_signature() -> None:
    fields = {"b": 'é\n\x01"\\', "a": 1, "signature": "ed25519:x:y", "c": None, "d": True}
    assert canonical(fields) == '{"a":1,"b":"é\\n\\u0001\\"\\\\","c":null,"d":true}'.encode()
    with pytest.raises(ValueError):
        canonical({"credits": 1.5})


def test_a_key_id_is_the_first_16_hex_digits_of_sha256_over_the_raw_public_key() -> None:
    public = SIGNING_KEY.private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(public) == hashlib.sha256(raw).hexdigest()[:16] == SIGNING_KEY.key_id


@given(money_in)
def test_every_signed_entry_verifies_and_reads_as_written(entry: Any) -> None:
    assert entry.signature is not None
    algorithm, kid, encoded = entry.signature.split(":")
    assert (algorithm, kid, len(base64.b64decode(encoded, validate=True))) == (
        "ed25519", SIGNING_KEY.key_id, 64,
    )  # fmt: skip
    # Stable under the project's own encoder: the written JSON, read back, verifies.
    assert VERIFY_KEYS.refusal(fields_of(entry), 3, 17) is None
    record = read_message(dump(entry), 3, 17, VERIFY_KEYS)
    assert isinstance(record, SourcedEntry) and record.entry == entry
    # Key order and spacing are not part of what is signed.
    spaced = json.dumps(dict(reversed(fields_of(entry).items())), indent=1).encode()
    assert isinstance(read_message(spaced, 3, 17, VERIFY_KEYS), SourcedEntry)


@given(money_in, st.sampled_from(["credits", "account_id", "reference", "occurred_at"]))
def test_any_other_content_under_a_signature_is_unauthenticated(entry: Any, name: str) -> None:
    fields = fields_of(entry)
    fields[name] = {
        "credits": 7 if fields["credits"] != 7 else 8, "account_id": "mallory",
        "reference": fields["reference"] + "x", "occurred_at": "2030-01-01T00:00:00Z",
    }[name]  # fmt: skip
    record = read_message(json.dumps(fields).encode(), 0, 0, VERIFY_KEYS)
    assert isinstance(record, RejectedMessage) and record.reason == "unauthenticated"
    assert "does not match" in record.error


@pytest.mark.parametrize("make", [granted, adjusted])
def test_unsigned_unknown_key_and_malformed_signatures_are_unauthenticated(make: Any) -> None:
    entry = make()
    unsigned = entry.model_copy(update={"signature": None})
    cases = {
        "unsigned": unsigned,
        "not a configured verify key": signed(unsigned, OTHER_KEY),
        "malformed": unsigned.model_copy(update={"signature": "ed25519:abc:not-base64!"}),
        "does not match": unsigned.model_copy(
            update={"signature": signed(make(), SIGNING_KEY).signature}
        ),
    }
    for why, bad in cases.items():
        record = read_message(dump(bad), 0, 0, VERIFY_KEYS)
        assert isinstance(record, RejectedMessage), why
        assert record.reason == "unauthenticated" and why in record.error


def test_debits_need_no_signature() -> None:
    assert isinstance(read_message(dump(debited()), 0, 0, VerifyKeys()), SourcedEntry)


def test_a_duplicate_key_cannot_smuggle_unsigned_content() -> None:
    raw = dump(granted(credits=5))
    smuggled = raw[:-1] + b',"credits":1000000}'
    record = read_message(smuggled, 0, 0, VERIFY_KEYS)
    assert isinstance(record, RejectedMessage) and record.reason == "unauthenticated"


def test_a_retired_key_verifies_only_below_its_cut() -> None:
    retired = parse_verify_key(SIGNING_KEY.verify_key().retired_pem({0: 10, 2: 5}))
    keys = VerifyKeys({retired.key_id: retired})
    fields = fields_of(granted())
    assert keys.refusal(fields, 0, 9) is None and keys.refusal(fields, 2, 4) is None
    for partition, offset in ((0, 10), (2, 5), (1, 0)):  # at the cut, past it, unnamed
        assert "retired" in str(keys.refusal(fields, partition, offset))


def test_key_files_round_trip_and_bad_ones_refuse_with_one_line(tmp_path: Path) -> None:
    private, public, kid = write_pair(tmp_path)
    assert private.stat().st_mode & 0o077 == 0  # the private key is its owner's only
    assert read_signing_key(private).key_id == kid
    assert list(read_verify_keys([public]).by_id) == [kid]
    with pytest.raises(FileExistsError):
        write_pair(tmp_path)
    (tmp_path / "junk.pem").write_text("not a key")
    for attempt in (
        lambda: read_signing_key(None),
        lambda: read_verify_keys([]),
        lambda: read_signing_key(public),  # a public key where the private one belongs
        lambda: read_verify_keys([tmp_path / "junk.pem"]),
        lambda: read_verify_keys([tmp_path / "missing.pem"]),
        lambda: read_verify_keys([public, public]),
    ):
        with pytest.raises(EntryKeyError) as error:
            attempt()
        assert "\n" not in str(error.value) and "LEDGER_ENTRY_" in str(error.value)


def test_the_bench_makes_a_pair_of_its_own_only_when_none_is_configured(tmp_path: Path) -> None:
    from benchmarks.namespace import with_entry_keys
    from services.common.settings import Settings

    bare = Settings(ledger_entry_signing_key="", ledger_entry_verify_keys="")
    keyed = with_entry_keys(bare, tmp_path)
    assert keyed.ledger_entry_signing_key is not None
    signing = read_signing_key(keyed.ledger_entry_signing_key)
    assert list(read_verify_keys(keyed.ledger_entry_verify_keys).by_id) == [signing.key_id]
    assert with_entry_keys(bare, tmp_path) == keyed  # the same pair on the next run
    configured = Settings()  # the session's keys, from the environment
    assert with_entry_keys(configured, tmp_path) is configured
