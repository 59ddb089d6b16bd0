"""Numbers at rest bound to settings: blind index for matching, sealed token for the plaintext."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import lru_cache

from phoneops.numbers.crypto import NumberVault, TokenCipher, blind_index, blind_index_many
from phoneops.settings import get_settings


class Vault:
    def __init__(self, blind_key: bytes, cipher: TokenCipher, numbers: NumberVault) -> None:
        self._blind_key = blind_key
        self.cipher = cipher  # link tokens
        self._numbers = numbers  # numbers at rest, bound to their blind index

    def index(self, e164: str) -> bytes:
        return blind_index(e164, self._blind_key)

    def index_many(self, values: Sequence[str]) -> list[bytes]:
        return blind_index_many(values, self._blind_key)

    def seal(self, e164: str, index: bytes) -> bytes:
        return self._numbers.seal(e164, bind=index)

    def open(self, sealed: bytes, index: bytes) -> str:
        return self._numbers.open(sealed, bind=index)

    def seal_text(self, text: str, context: str) -> str:
        """Any text holding numbers (a file's first rows) sealed at rest, bound to `context`; base64."""
        return base64.b64encode(self._numbers.seal(text, bind=b"text:" + context.encode())).decode("ascii")

    def open_text(self, sealed: str, context: str) -> str:
        return self._numbers.open(base64.b64decode(sealed), bind=b"text:" + context.encode())


@lru_cache(maxsize=1)
def get_vault() -> Vault:
    settings = get_settings()
    ring = settings.key_ring()
    return Vault(settings.blind_key(), TokenCipher(ring, settings.legacy_key()), NumberVault(ring))


def mask(e164: str) -> str:
    """What non-admins see of a number: country code and last two digits."""
    if len(e164) <= 6:
        return "*" * len(e164)
    return e164[:4] + "*" * (len(e164) - 6) + e164[-2:]
