"""Link tokens, numbers at rest, and the blind index. Pure functions of their keys: no settings here.

Link tokens (`TokenCipher`)
---------------------------
``v1.<kid>.<payload>`` where payload is URL-safe base64 without padding of ``nonce(12) || ciphertext ||
tag(16)``: AES-256-GCM under the key named ``kid``, with ``b"phoneops/link-token/v1/" + kid`` as associated
data, so a token cannot be moved to another key id. Every character is URL-safe (RFC 3986 unreserved).
New tokens use the first key of the ring; any key of the ring (current or retired) opens its own tokens.

The original format (URL-safe base64 without padding of ``nonce || ciphertext || tag`` under ``AES_KEY``,
no associated data) has no ``.``; such tokens are opened with `legacy_key`. Legacy tokens that went
through a tool adding ``=`` padding are opened too (only correct padding: the text then must be a multiple
of 4 characters with at most two ``=``).

Numbers at rest (`NumberVault`)
-------------------------------
``0x01 || len(kid) || kid || nonce(12) || ciphertext || tag(16)``, AES-256-GCM with
``b"phoneops/number/v1/" + bind + b"/" + kid`` as associated data. Pass the row's blind index as `bind` to
tie a sealed number to its row (a sealed value copied onto another row then fails to open).

Blind index
-----------
HMAC-SHA256 of the E.164 text under its own key (never the encryption key): equal numbers get equal
indexes, so lists, dedupe and joins work without plaintext. The bulk forms (`blind_index_many`,
`blind_index_block`) hash all their numbers in one call of the native module `_blindhash` (C over
OpenSSL's SHA-256, which uses the CPU's SHA extensions: ~0.11 us a number against ~0.77 us for the
interpreter's loop on the bench machine), with the keyed inner and outer SHA-256 states prepared once
(RFC 2104). The module is built by the install where a C compiler and OpenSSL's headers exist; without it
the same bytes come from a Python loop over the same prepared states (`blind_index_backend` says which
runs). `blind_index_block` takes and returns one bytes object so that a process pool can hash millions of
numbers with nothing per number crossing the process boundary. tests/numbers/test_crypto.py and
tests/cleaning/test_pipeline_hashing.py check every form and every path against `hmac` byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phoneops.core.errors import AppError, BadRequest

__all__ = [
    "BulkDecrypt",
    "InvalidToken",
    "NumberVault",
    "SealedNumberError",
    "TokenCipher",
    "blind_index",
    "blind_index_backend",
    "blind_index_block",
    "blind_index_many",
    "decode_key",
    "looks_like_token",
    "parse_key_ring",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_V1 = "v1"
_TOKEN_AAD = b"phoneops/link-token/v1/"
_NUMBER_AAD = b"phoneops/number/v1/"
_NUMBER_VERSION = 1
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_V1_TOKEN = re.compile(r"v1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{38,}")
_LEGACY_TOKEN = re.compile(r"[A-Za-z0-9_-]{38,}={0,2}")  # 12 + 16 bytes at least; padding tolerated
_E164 = re.compile(r"\+[1-9][0-9]{1,19}")
LOOKS_LIKE_TOKEN_MIN = 25  # the original decrypted custom_variable_1 from 25 characters on


class InvalidToken(BadRequest):
    """A link token that cannot be opened: malformed, truncated, altered, or from an unknown key."""

    code = "invalid_token"


class SealedNumberError(AppError):
    """A number at rest that cannot be opened: corrupt data or a key missing from the ring."""

    status_code = 500
    code = "sealed_number_error"


class BulkDecrypt(NamedTuple):
    values: list[str | None]  # None where the token failed
    errors: dict[int, str]  # position -> why


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict URL-safe base64 without padding: the alphabet only, canonical (one text per byte string)."""
    if not _B64URL.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text else None


def _unpadded(text: str) -> str:
    """A legacy token without its ``=`` padding when the padding is exactly right; else as given (and then
    refused by `_b64decode`)."""
    core = text.rstrip("=")
    if core != text and len(text) % 4 == 0 and len(text) - len(core) == -len(core) % 4:
        return core
    return text


def decode_key(text: str) -> bytes:
    """A 32-byte key from (URL-safe or standard) base64, padding optional, as AES_KEY was written."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("key is not base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def parse_key_ring(spec: str) -> list[tuple[str, bytes]]:
    """``"kid2:base64,kid1:base64"`` -> [(kid, key)], current key first."""
    ring = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, sep, key = item.partition(":")
        if not sep:
            raise ValueError(f"key ring entry {kid!r} is not 'kid:base64key'")
        ring.append((kid.strip(), decode_key(key)))
    return ring


class _KeyRing:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._aead: dict[str, AESGCM] = {}
        for kid, key in keys:
            if not _KID.fullmatch(kid):
                raise ValueError(f"key id {kid!r} must be 1-32 characters of [A-Za-z0-9_-]")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes, got {len(key)}")
            if kid in self._aead:
                raise ValueError(f"key id {kid!r} appears twice in the ring")
            self._aead[kid] = AESGCM(key)
        self.current = keys[0][0]

    def seal(self, data: bytes, aad: bytes) -> tuple[str, bytes]:
        """(current kid, nonce || ciphertext || tag) with `aad` + kid as associated data."""
        nonce, kid = os.urandom(NONCE_BYTES), self.current
        return kid, nonce + self._aead[kid].encrypt(nonce, data, aad + kid.encode("ascii"))

    def open(self, kid: str, sealed: bytes, aad: bytes) -> bytes:
        """Raises KeyError (unknown kid) or InvalidTag (altered, or another key)."""
        return self._aead[kid].decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad + kid.encode("ascii"))

    def __contains__(self, kid: object) -> bool:
        return kid in self._aead


def looks_like_token(value: str) -> bool:
    """Whether a tracker value is a token rather than a phone number: at least 25 characters (the
    original's rule) and the shape of a token, new or original format."""
    value = value.strip()
    return len(value) >= LOOKS_LIKE_TOKEN_MIN and bool(_V1_TOKEN.fullmatch(value) or _LEGACY_TOKEN.fullmatch(value))


class TokenCipher:
    """AES-256-GCM link tokens under a key ring (first key current); original-format tokens under
    `legacy_key`."""

    def __init__(self, key_ring: Sequence[tuple[str, bytes]], legacy_key: bytes | None = None) -> None:
        self._ring = _KeyRing(key_ring)
        if legacy_key is not None and len(legacy_key) != KEY_BYTES:
            raise ValueError(f"legacy key must be {KEY_BYTES} bytes, got {len(legacy_key)}")
        self._legacy = AESGCM(legacy_key) if legacy_key is not None else None

    @property
    def current_kid(self) -> str:
        return self._ring.current

    def encrypt(self, plaintext: str) -> str:
        kid, sealed = self._ring.seal(plaintext.encode("utf-8"), _TOKEN_AAD)
        return f"{_V1}.{kid}.{_b64encode(sealed)}"

    def kid_of(self, token: str) -> str | None:
        """The key id a token names; None for an original-format token."""
        return self._split(token.strip())[0]

    def decrypt(self, token: str) -> str:
        if not isinstance(token, str) or not token.strip():
            raise InvalidToken("token is empty")
        kid, sealed = self._split(token.strip())
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise InvalidToken("token is truncated")
        try:
            if kid is None:
                if self._legacy is None:
                    raise InvalidToken("token is in the original format but no legacy key is configured")
                data = self._legacy.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], None)
            else:
                data = self._ring.open(kid, sealed, _TOKEN_AAD)
        except InvalidTag:
            raise InvalidToken("token failed authentication: altered, truncated, or made with another key") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidToken("token does not hold text") from None

    def _split(self, token: str) -> tuple[str | None, bytes]:
        if "." not in token:
            raw = _b64decode(_unpadded(token))
            if raw is None:
                raise InvalidToken("token is not URL-safe base64")
            return None, raw
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _V1:
            raise InvalidToken(f"token format not recognised (expected {_V1}.<key id>.<data>)")
        kid, payload = parts[1], parts[2]
        if kid not in self._ring:
            raise InvalidToken(f"token was made with key {kid!r}, which is not in the key ring")
        raw = _b64decode(payload)
        if raw is None:
            raise InvalidToken("token data is not URL-safe base64")
        return kid, raw

    def encrypt_many(self, values: Iterable[str]) -> list[str]:
        return [self.encrypt(value) for value in values]

    def decrypt_many(self, tokens: Iterable[str | None]) -> BulkDecrypt:
        """Every token opened; failures are None in `values` with their message in `errors`."""
        values: list[str | None] = []
        errors: dict[int, str] = {}
        for position, token in enumerate(tokens):
            try:
                values.append(self.decrypt(token or ""))
            except InvalidToken as exc:
                values.append(None)
                errors[position] = exc.message
        return BulkDecrypt(values, errors)


class NumberVault:
    """E.164 numbers at rest: sealed with the current key of a ring, opened with any key of it."""

    def __init__(self, key_ring: Sequence[tuple[str, bytes]]) -> None:
        self._ring = _KeyRing(key_ring)

    @property
    def current_kid(self) -> str:
        return self._ring.current

    def seal(self, e164: str, bind: bytes = b"") -> bytes:
        kid, sealed = self._ring.seal(e164.encode("utf-8"), _NUMBER_AAD + bind + b"/")
        return bytes([_NUMBER_VERSION, len(kid)]) + kid.encode("ascii") + sealed

    def kid_of(self, blob: bytes) -> str:
        if len(blob) < 2 or blob[0] != _NUMBER_VERSION or len(blob) < 2 + blob[1]:
            raise SealedNumberError("sealed number is malformed")
        return blob[2 : 2 + blob[1]].decode("ascii", errors="replace")

    def needs_rotation(self, blob: bytes) -> bool:
        """Sealed under a key other than the current one (re-seal it)."""
        return self.kid_of(blob) != self._ring.current

    def open(self, blob: bytes, bind: bytes = b"") -> str:
        kid = self.kid_of(blob)
        sealed = blob[2 + blob[1] :]
        if kid not in self._ring:
            raise SealedNumberError(f"sealed number uses key {kid!r}, which is not in the key ring")
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise SealedNumberError("sealed number is truncated")
        try:
            data = self._ring.open(kid, sealed, _NUMBER_AAD + bind + b"/")
        except InvalidTag:
            raise SealedNumberError("sealed number failed authentication (altered, other key or other row)") from None
        return data.decode("utf-8")


def _index_key(key: bytes) -> bytes:
    if len(key) < KEY_BYTES:
        raise ValueError(f"blind index key must be at least {KEY_BYTES} bytes")
    return key


def blind_index(e164: str, key: bytes) -> bytes:
    """HMAC-SHA256 (32 bytes) of an E.164 number under the blind-index key."""
    if not _E164.fullmatch(e164):
        raise ValueError(f"not an E.164 number: {e164!r} (normalise first)")
    return hmac.new(_index_key(key), e164.encode("ascii"), hashlib.sha256).digest()


@cache
def _sha256_for_short_messages() -> Callable[[bytes], Any]:
    """A SHA-256 constructor for hashing millions of short messages: CPython's own implementation when the
    interpreter has it (`_sha2` from 3.12, `_sha256` before), else hashlib's (OpenSSL). The digests are the
    same; CPython's copy/update/digest calls cost less than OpenSSL 3's per-call context handling (215,000
    blind indexes: 0.146 -> 0.112 CPU-s, though OpenSSL hashes each block faster)."""
    for module in ("_sha2", "_sha256"):
        try:
            constructor: Callable[[bytes], Any] = importlib.import_module(module).sha256
        except (ImportError, AttributeError):
            continue
        return constructor
    return hashlib.sha256


def _key_block(key: bytes) -> bytes:
    """HMAC's 64-byte key block (RFC 2104): the key, hashed first when longer than a block, padded with zeros."""
    block = _index_key(key)
    return (block if len(block) <= 64 else hashlib.sha256(block).digest()).ljust(64, b"\0")


@cache
def _native() -> Callable[[bytes, bytes], bytes] | None:
    """The native bulk HMAC (`_blindhash.hmac_sha256_lines`), or None where the install could not build it."""
    try:
        from phoneops.numbers import _blindhash
    except ImportError:
        return None
    return _blindhash.hmac_sha256_lines


def blind_index_backend() -> str:
    """Which path the bulk blind indexes take here: "native" (`_blindhash`) or "python"."""
    return "native" if _native() is not None else "python"


def _python_lines(lines: Iterable[bytes], key: bytes) -> bytes:
    """The pure-Python path: the keyed inner and outer states copied for each line."""
    block = _key_block(key)
    sha256 = _sha256_for_short_messages()
    inner, outer = sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))
    inner_copy, outer_copy = inner.copy, outer.copy
    out = bytearray()
    extend = out.extend
    for value in lines:
        state = inner_copy()
        state.update(value)
        final = outer_copy()
        final.update(state.digest())
        extend(final.digest())
    return bytes(out)


def _hash_lines(block: bytes, key: bytes) -> bytes:
    """The indexes of the lines of a checked, non-empty block, concatenated."""
    native = _native()
    return native(_key_block(key), block) if native is not None else _python_lines(block.split(b"\n"), key)


def blind_index_many(values: Iterable[str], key: bytes) -> list[bytes]:
    """`blind_index` for many numbers, hashed in one call."""
    values = list(values)
    for value in values:
        if not _E164.fullmatch(value):
            raise ValueError(f"not an E.164 number: {value!r} (normalise first)")
    if not values:
        return []
    out = _hash_lines("\n".join(values).encode("ascii"), key)
    return [out[at:at + 32] for at in range(0, len(out), 32)]


_E164_BLOCK = re.compile(rb"(?:\+[1-9][0-9]{1,19}\n)*\+[1-9][0-9]{1,19}")


def blind_index_block(block: bytes, key: bytes) -> bytes:
    """`blind_index` of each line of `block` (E.164 numbers joined by ``\\n``), the 32-byte indexes
    concatenated in the same order; ``b""`` for an empty block."""
    if not block:
        return b""
    if not _E164_BLOCK.fullmatch(block):
        raise ValueError("not a block of E.164 numbers (normalise first)")
    return _hash_lines(block, key)
