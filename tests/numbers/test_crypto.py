"""Link tokens (new and original format), numbers at rest, blind index."""

from __future__ import annotations

import base64
import os
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phoneops.core.errors import BadRequest
from phoneops.numbers.crypto import (
    InvalidToken,
    NumberVault,
    SealedNumberError,
    TokenCipher,
    blind_index,
    blind_index_many,
    decode_key,
    looks_like_token,
    parse_key_ring,
)

K1, K2, LEGACY, OTHER = (bytes([n]) * 32 for n in (1, 2, 3, 4))
INDEX_KEY = b"i" * 32


def original_token(plaintext: str, key: bytes, nonce: bytes | None = None) -> str:
    """The original optimizer's format, written independently of crypto.py."""
    nonce = nonce or os.urandom(12)
    raw = nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def flip(token: str, at: int) -> str:
    """Change one character of the payload to another base64url character."""
    ch = token[at]
    return token[:at] + ("A" if ch != "A" else "B") + token[at + 1 :]


# --- tokens ------------------------------------------------------------------------------------------------


def test_round_trip_and_format() -> None:
    cipher = TokenCipher([("k2", K2), ("k1", K1)])
    token = cipher.encrypt("+447400123456")
    assert re.fullmatch(r"v1\.k2\.[A-Za-z0-9_-]+", token)
    assert cipher.decrypt(token) == "+447400123456"
    assert cipher.encrypt("+447400123456") != token  # random nonce
    assert cipher.kid_of(token) == "k2"
    assert cipher.current_kid == "k2"


def test_retired_key_still_opens_its_tokens() -> None:
    old = TokenCipher([("k1", K1)]).encrypt("+12125550101")
    rotated = TokenCipher([("k2", K2), ("k1", K1)])
    assert rotated.decrypt(old) == "+12125550101"
    assert rotated.kid_of(rotated.encrypt("x")) == "k2"


def test_original_format_tokens_still_open() -> None:
    cipher = TokenCipher([("k1", K1)], legacy_key=LEGACY)
    assert cipher.decrypt(original_token("447400123456", LEGACY)) == "447400123456"
    # a fixed vector: 12-byte nonce of zeros, so the token text itself is pinned
    fixed = original_token("447400123456", LEGACY, nonce=bytes(12))
    assert fixed.startswith("AAAAAAAAAAAAAAAA")
    assert cipher.decrypt(fixed) == "447400123456"
    assert cipher.kid_of(fixed) is None


def test_original_format_without_legacy_key_is_refused() -> None:
    with pytest.raises(InvalidToken, match="no legacy key"):
        TokenCipher([("k1", K1)]).decrypt(original_token("447400123456", LEGACY))


def test_original_format_under_wrong_legacy_key_is_refused() -> None:
    with pytest.raises(InvalidToken, match="authentication"):
        TokenCipher([("k1", K1)], legacy_key=OTHER).decrypt(original_token("447400123456", LEGACY))


@pytest.mark.parametrize("position", [8, 20, 40, -1])
def test_tampered_token_is_refused(position: int) -> None:
    cipher = TokenCipher([("k1", K1)])
    token = cipher.encrypt("+447400123456")
    with pytest.raises(InvalidToken):
        cipher.decrypt(flip(token, position % len(token)))


def test_tampered_original_token_is_refused() -> None:
    cipher = TokenCipher([("k1", K1)], legacy_key=LEGACY)
    with pytest.raises(InvalidToken):
        cipher.decrypt(flip(original_token("447400123456", LEGACY), 20))


def test_key_id_is_bound_to_the_token() -> None:
    cipher = TokenCipher([("k2", K2), ("k1", K1)])
    token = cipher.encrypt("+447400123456")
    with pytest.raises(InvalidToken, match="authentication"):
        cipher.decrypt(token.replace("v1.k2.", "v1.k1.", 1))


def test_truncated_token_is_refused() -> None:
    cipher = TokenCipher([("k1", K1)])
    token = cipher.encrypt("+447400123456")
    for cut in (4, 10, 30):
        with pytest.raises(InvalidToken):
            cipher.decrypt(token[:-cut])
    with pytest.raises(InvalidToken, match="truncated"):
        cipher.decrypt("v1.k1." + token.split(".")[2][:20])


def test_foreign_key_token_is_refused() -> None:
    foreign = TokenCipher([("k1", OTHER)]).encrypt("+447400123456")
    with pytest.raises(InvalidToken, match="authentication"):
        TokenCipher([("k1", K1)]).decrypt(foreign)
    unknown = TokenCipher([("k9", OTHER)]).encrypt("+447400123456")
    with pytest.raises(InvalidToken, match="not in the key ring"):
        TokenCipher([("k1", K1)]).decrypt(unknown)


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "hello", "v1..", "v1.k1", "v2.k1.AAAA", "v1.k1.!!!!", "v1.k1.a.b", "====", "+447400123456",
     "a" * 39, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?"],
)
def test_garbage_is_refused_with_a_clear_error(garbage: str) -> None:
    cipher = TokenCipher([("k1", K1)], legacy_key=LEGACY)
    with pytest.raises(InvalidToken) as caught:
        cipher.decrypt(garbage)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.code == "invalid_token"
    assert caught.value.status_code == 400
    assert caught.value.message


def test_non_canonical_base64_is_refused() -> None:
    cipher = TokenCipher([("k1", K1)], legacy_key=LEGACY)
    token = original_token("4474001234", LEGACY)  # 38 bytes: the last character carries unused bits
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = next(c for c in alphabet if c != last and alphabet.index(c) >> 2 == alphabet.index(last) >> 2)
    assert base64.urlsafe_b64decode(token[:-1] + sibling + "=") == base64.urlsafe_b64decode(token + "=")
    with pytest.raises(InvalidToken):
        cipher.decrypt(token[:-1] + sibling)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidToken):
        TokenCipher([("k1", K1)]).decrypt(None)  # type: ignore[arg-type]


def test_bulk_helpers() -> None:
    cipher = TokenCipher([("k1", K1)], legacy_key=LEGACY)
    tokens = cipher.encrypt_many(["+447400123456", "+12125550101"])
    result = cipher.decrypt_many([*tokens, "junk", None, original_token("x", LEGACY)])
    assert result.values == ["+447400123456", "+12125550101", None, None, "x"]
    assert set(result.errors) == {2, 3}


def test_looks_like_token() -> None:
    cipher = TokenCipher([("k1", K1)])
    assert looks_like_token(cipher.encrypt("+447400123456"))
    assert looks_like_token(original_token("447400123456", LEGACY))
    for value in ["447400123456", "+44 7400 123456", "{{phoneNumber}}", "", "a" * 24, "+" * 40, "0044 (0) 7400-123-456 ext"]:
        assert not looks_like_token(value)


@pytest.mark.parametrize(
    "ring", [[], [("k1", b"short")], [("k1", K1), ("k1", K2)], [("bad id", K1)], [("a.b", K1)], [("", K1)]]
)
def test_bad_key_rings_fail_fast(ring: list[tuple[str, bytes]]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        TokenCipher(ring)
    with pytest.raises(ValueError):  # noqa: PT011
        NumberVault(ring)


def test_key_parsing() -> None:
    text = base64.urlsafe_b64encode(K1).decode()
    assert decode_key(text) == K1
    assert decode_key(text.rstrip("=")) == K1
    assert decode_key(base64.b64encode(K2).decode()) == K2
    assert parse_key_ring(f"k2:{base64.urlsafe_b64encode(K2).decode()}, k1:{text}") == [("k2", K2), ("k1", K1)]
    with pytest.raises(ValueError, match="32 bytes"):
        decode_key(base64.urlsafe_b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError, match="kid:base64key"):
        parse_key_ring("no-colon-here")
    with pytest.raises(ValueError, match="legacy key"):
        TokenCipher([("k1", K1)], legacy_key=b"short")


# --- numbers at rest ------------------------------------------------------------------------------------------


def test_vault_round_trip_and_rotation() -> None:
    old = NumberVault([("n1", K1)])
    blob = old.seal("+447400123456")
    assert blob[0] == 1
    assert old.kid_of(blob) == "n1"
    rotated = NumberVault([("n2", K2), ("n1", K1)])
    assert rotated.open(blob) == "+447400123456"
    assert rotated.needs_rotation(blob)
    assert not rotated.needs_rotation(rotated.seal("+447400123456"))


def test_vault_bind_ties_a_number_to_its_row() -> None:
    vault = NumberVault([("n1", K1)])
    row = blind_index("+447400123456", INDEX_KEY)
    blob = vault.seal("+447400123456", bind=row)
    assert vault.open(blob, bind=row) == "+447400123456"
    with pytest.raises(SealedNumberError, match="authentication"):
        vault.open(blob, bind=blind_index("+12125550101", INDEX_KEY))
    with pytest.raises(SealedNumberError):
        vault.open(blob)


def test_vault_refuses_damage_and_unknown_keys() -> None:
    vault = NumberVault([("n1", K1)])
    blob = vault.seal("+447400123456")
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    for bad in (damaged, blob[:10], b"", b"\x02\x02n1" + blob[4:]):
        with pytest.raises(SealedNumberError):
            vault.open(bad)
    with pytest.raises(SealedNumberError, match="not in the key ring"):
        NumberVault([("n2", K2)]).open(blob)
    token = TokenCipher([("n1", K1)]).encrypt("+447400123456")  # same key and key id, other purpose
    payload = token.split(".")[2]
    sealed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    with pytest.raises(SealedNumberError, match="authentication"):
        vault.open(b"\x01\x02n1" + sealed)


# --- blind index ------------------------------------------------------------------------------------------------


def test_blind_index() -> None:
    a = blind_index("+447400123456", INDEX_KEY)
    assert len(a) == 32
    assert a == blind_index("+447400123456", INDEX_KEY)
    assert a != blind_index("+447400123457", INDEX_KEY)
    assert a != blind_index("+447400123456", b"j" * 32)
    numbers = ["+447400123456", "+12125550101", "+447400123456"]
    assert blind_index_many(numbers, INDEX_KEY) == [blind_index(n, INDEX_KEY) for n in numbers]
    assert blind_index_many([], INDEX_KEY) == []


@pytest.mark.parametrize("bad", ["447400123456", "07400 123456", "+44 7400 123456", "", "+0123"])
def test_blind_index_wants_e164(bad: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        blind_index(bad, INDEX_KEY)
    with pytest.raises(ValueError, match=r"E\.164"):
        blind_index_many(["+447400123456", bad], INDEX_KEY)


def test_blind_index_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        blind_index("+447400123456", b"short")
