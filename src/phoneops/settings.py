"""The one settings class. Every variable is documented in `.env.example` (a test checks it)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class DhruAccount(BaseModel):
    """One DHRU Fusion reseller account (an entry of DHRU_ACCOUNTS)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")
    base_url: str = Field(min_length=8, pattern=r"^https?://")
    username: str = Field(min_length=1)
    api_key: SecretStr
    base64_parameters: bool = False
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or f"DHRU {self.name}"


class SettingsError(RuntimeError):
    """A missing or malformed setting; the message names the variable."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def decode_key(value: str, *, name: str, length: int = 32) -> bytes:
    """Decode a base64 (standard or URL-safe, padding optional) or hex key of `length` bytes."""
    text = value.strip()
    candidates: list[bytes] = []
    if len(text) == length * 2:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    padded = text + "=" * (-len(text) % 4)
    for decoder in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            candidates.append(decoder(padded))
        except (binascii.Error, ValueError):
            continue
    for raw in candidates:
        if len(raw) == length:
            return raw
    raise ValueError(f"{name} must be {length} bytes, base64 or hex encoded")


class Settings(BaseSettings):
    """phoneops configuration, read from the environment (and `.env` when present)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # --- core --------------------------------------------------------------------------------
    # DATA_DIR first: the defaults of DATABASE_URL and STORAGE_ROOT live inside it, so a command run from any
    # folder with the same DATA_DIR finds the same database and files.
    data_dir: Path = Field(default=Path("./data"), alias="DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL", validate_default=True)
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    storage_root: Path = Field(default=Path(""), alias="STORAGE_ROOT", validate_default=True)
    max_upload_mb: int = Field(default=512, ge=1, alias="MAX_UPLOAD_MB")
    # Where stored files live: "local" (STORAGE_ROOT on this machine) or "s3" (shared by every machine).
    storage_backend: Literal["local", "s3"] = Field(default="local", alias="STORAGE_BACKEND")
    s3_bucket: str | None = Field(default=None, alias="S3_BUCKET")
    s3_prefix: str = Field(default="phoneops/", alias="S3_PREFIX")
    # Only for S3-compatible services (MinIO, Ceph, moto in tests); falls back to AWS_ENDPOINT_URL.
    s3_endpoint_url: str | None = Field(default=None, alias="S3_ENDPOINT_URL")
    session_secret: SecretStr = Field(alias="SESSION_SECRET", min_length=32)
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60, alias="SESSION_MAX_AGE_SECONDS")
    secure_cookies: bool = Field(default=False, alias="SECURE_COOKIES")
    log_json: bool = Field(default=True, alias="LOG_JSON")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # Login throttling (phoneops.core.security.login_wait): after LOGIN_MAX_FAILURES failures of one user name
    # from one address, each further try waits 1, 2, 4 ... s (at most LOGIN_LOCKOUT_SECONDS); one address
    # gets LOGIN_ADDRESS_MAX_FAILURES failures across all names per LOGIN_LOCKOUT_SECONDS. Other addresses,
    # the real owner's included, are not slowed down by someone else's guesses.
    login_max_failures: int = Field(default=5, ge=1, alias="LOGIN_MAX_FAILURES")
    login_lockout_seconds: int = Field(default=300, ge=1, alias="LOGIN_LOCKOUT_SECONDS")
    login_address_max_failures: int = Field(default=20, ge=1, alias="LOGIN_ADDRESS_MAX_FAILURES")
    # Requests worked on at once per API process (0: the database pool's size, see core.load); beyond, a
    # request waits API_QUEUE_SECONDS for a slot and then gets 503 with Retry-After.
    api_max_inflight: int = Field(default=0, ge=0, alias="API_MAX_INFLIGHT")
    api_queue_seconds: float = Field(default=10.0, ge=0, le=60, alias="API_QUEUE_SECONDS")
    job_lease_seconds: int = Field(default=60, ge=5, alias="JOB_LEASE_SECONDS")
    worker_threads: int = Field(default=4, ge=1, alias="WORKER_THREADS")
    # How long an API `Idempotency-Key` and the answer kept for it live (core/idempotency.py).
    idempotency_key_hours: int = Field(default=24, ge=1, le=24 * 30, alias="IDEMPOTENCY_KEY_HOURS")

    # --- privacy: retention (0 keeps forever) --------------------------------------------------
    retention_tracker_events_days: int = Field(default=0, ge=0, alias="RETENTION_TRACKER_EVENTS_DAYS")
    retention_hlr_raw_days: int = Field(default=0, ge=0, alias="RETENTION_HLR_RAW_DAYS")

    # --- numbers: encryption -----------------------------------------------------------------
    # Key ring "kid:base64key,kid:base64key"; the first entry is the current key, the rest are retired.
    aes_keys: SecretStr = Field(alias="AES_KEYS")
    # The original system's single key (tokens without a key id); optional.
    aes_key_legacy: SecretStr | None = Field(default=None, alias="AES_KEY")
    blind_index_key: SecretStr = Field(alias="BLIND_INDEX_KEY")
    default_region: str = Field(default="GB", alias="DEFAULT_REGION", min_length=2, max_length=2)
    # How long an applied list import can be undone (docs/imports.md).
    import_undo_days: int = Field(default=30, ge=0, le=3650, alias="IMPORT_UNDO_DAYS")

    # --- Voluum ------------------------------------------------------------------------------
    voluum_base_url: str = Field(default="https://api.voluum.com", alias="VOLUUM_BASE_URL")
    voluum_access_id: str | None = Field(default=None, alias="VOLUUM_ACCESS_ID")
    voluum_access_key: SecretStr | None = Field(default=None, alias="VOLUUM_ACCESS_KEY")
    voluum_traffic_source_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOLUUM_TRAFFIC_SOURCE_IDS"
    )
    voluum_currency: str = Field(default="EUR", alias="VOLUUM_CURRENCY", min_length=3, max_length=3)
    voluum_timezone: str = Field(default="Etc/GMT", alias="VOLUUM_TIMEZONE")
    # How a campaign name gives its conversions' country: a regex with a group named `country` (ISO code or
    # English name). Default: the second " - " segment, as the original did.
    voluum_campaign_country_pattern: str = Field(
        default=r"^.*? - (?P<country>.+?)(?: - |$)", alias="VOLUUM_CAMPAIGN_COUNTRY_PATTERN"
    )

    # --- Ongage ------------------------------------------------------------------------------
    ongage_base_url: str = Field(default="https://api.ongage.net", alias="ONGAGE_BASE_URL")
    ongage_list_id: str | None = Field(default=None, alias="ONGAGE_LIST_ID")
    ongage_username: str | None = Field(default=None, alias="ONGAGE_USERNAME")
    ongage_password: SecretStr | None = Field(default=None, alias="ONGAGE_PASSWORD")
    ongage_account_code: str | None = Field(default=None, alias="ONGAGE_ACCOUNT_CODE")
    ongage_countries: Annotated[list[str], NoDecode] = Field(default=["GB"], alias="ONGAGE_COUNTRIES")
    ongage_email_pattern: str = Field(default="+{phone}@yourmobile.com", alias="ONGAGE_EMAIL_PATTERN")
    ongage_batch_size: int = Field(default=500, ge=1, le=500, alias="ONGAGE_BATCH_SIZE")
    ongage_retry_limit: int = Field(default=5, ge=1, alias="ONGAGE_RETRY_LIMIT")

    # --- MessageWhiz -------------------------------------------------------------------------
    messagewhiz_base_url: str = Field(default="https://sms.messagewhiz.com", alias="MESSAGEWHIZ_BASE_URL")
    messagewhiz_api_key: SecretStr | None = Field(default=None, alias="MESSAGEWHIZ_API_KEY")
    # The currency MessageWhiz bills in; costs pushed to Voluum are converted to VOLUUM_CURRENCY with the
    # admins' rate table when the two differ (docs/money.md).
    messagewhiz_currency: str = Field(default="EUR", alias="MESSAGEWHIZ_CURRENCY", pattern=r"^[A-Za-z]{3}$")

    # --- HLR lookup --------------------------------------------------------------------------
    hlr_base_url: str = Field(default="https://api.hlrlookup.com", alias="HLR_BASE_URL")
    hlr_batch_base_url: str = Field(default="https://batches.hlrlookup.com", alias="HLR_BATCH_BASE_URL")
    hlr_api_key: SecretStr | None = Field(default=None, alias="HLR_API_KEY")
    hlr_api_secret: SecretStr | None = Field(default=None, alias="HLR_API_SECRET")
    hlr_poll_every_seconds: float = Field(default=10.0, gt=0, alias="HLR_POLL_EVERY_SECONDS")
    hlr_poll_max_seconds: float = Field(default=3600.0, gt=0, alias="HLR_POLL_MAX_SECONDS")
    hlr_cache_ttl_days: int = Field(default=30, ge=0, alias="HLR_CACHE_TTL_DAYS")
    hlr_confirm_above_credits: int = Field(default=1000, ge=0, alias="HLR_CONFIRM_ABOVE_CREDITS")
    hlr_credit_price: Decimal = Field(default=Decimal("0.01"), ge=0, alias="HLR_CREDIT_PRICE")

    # --- AWS SQS -----------------------------------------------------------------------------
    aws_region: str = Field(default="eu-west-1", alias="AWS_REGION")
    aws_access_key_id: str | None = Field(default=None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None, alias="AWS_SECRET_ACCESS_KEY")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    sqs_queue_url: str | None = Field(default=None, alias="SQS_QUEUE_URL")

    # --- GSM Fusion (IMEI) -------------------------------------------------------------------
    gsm_fusion_base_url: str = Field(default="https://hammerfusion.com", alias="GSM_FUSION_BASE_URL")
    gsm_fusion_username: str | None = Field(default=None, alias="GSM_FUSION_USERNAME")
    gsm_fusion_api_key: SecretStr | None = Field(default=None, alias="GSM_FUSION_API_KEY")
    imei_concurrency: int = Field(default=30, ge=1, le=200, alias="IMEI_CONCURRENCY")
    imei_rate_per_second: float = Field(default=300.0, gt=0, alias="IMEI_RATE_PER_SECOND")
    imei_daily_budget: Decimal = Field(default=Decimal("2000"), ge=0, alias="IMEI_DAILY_BUDGET")
    imei_services_ttl_seconds: int = Field(default=300, ge=0, alias="IMEI_SERVICES_TTL_SECONDS")
    imei_sync_interval_minutes: int = Field(default=5, ge=1, alias="IMEI_SYNC_INTERVAL_MINUTES")
    # DHRU Fusion reseller accounts, side by side (docs/imei.md): a JSON list of objects with `name`
    # (a-z0-9_-, at most 16; prefixes that account's service and order ids), `base_url`, `username`,
    # `api_key`, optional `base64_parameters` (servers that want the XML parameters base64-encoded).
    dhru_accounts: Annotated[list[DhruAccount], NoDecode] = Field(default_factory=list, alias="DHRU_ACCOUNTS")
    imei_min_balance: Decimal = Field(default=Decimal("0"), ge=0, alias="IMEI_MIN_BALANCE")
    imei_balance_check_every: int = Field(default=50, ge=1, le=100_000, alias="IMEI_BALANCE_CHECK_EVERY")

    @field_validator("dhru_accounts", mode="before")
    @classmethod
    def _dhru_accounts(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"DHRU_ACCOUNTS must be a JSON list of accounts ({exc})") from None
        return value

    @field_validator("dhru_accounts", mode="after")
    @classmethod
    def _dhru_unique(cls, value: list[DhruAccount]) -> list[DhruAccount]:
        names = [a.name for a in value]
        if len(set(names)) != len(names) or "gsm_fusion" in names:
            raise ValueError("DHRU_ACCOUNTS names must be unique (and not 'gsm_fusion')")
        return value

    @field_validator("voluum_traffic_source_ids", "ongage_countries", mode="before")
    @classmethod
    def _csv_list(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("ongage_countries", mode="after")
    @classmethod
    def _upper_countries(cls, value: list[str]) -> list[str]:
        return [c.upper() for c in value]

    @field_validator("voluum_currency", "messagewhiz_currency", mode="after")
    @classmethod
    def _upper_currency(cls, value: str) -> str:
        return value.upper()

    @field_validator("default_region", mode="after")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("storage_root", mode="after")
    @classmethod
    def _default_storage_root(cls, value: Path, info: ValidationInfo) -> Path:
        if str(value) in ("", "."):
            data_dir = info.data.get("data_dir") or Path("./data").absolute()
            return Path(data_dir) / "files"
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _check_db_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            data_dir = info.data.get("data_dir") or Path("./data").absolute()
            return f"sqlite:///{Path(data_dir) / 'phoneops.db'}"
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("aes_keys", mode="after")
    @classmethod
    def _check_key_ring(cls, value: SecretStr) -> SecretStr:
        parse_key_ring(value.get_secret_value())
        return value

    @field_validator("blind_index_key", mode="after")
    @classmethod
    def _check_blind_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value(), name="BLIND_INDEX_KEY")
        return value

    @field_validator("aes_key_legacy", mode="after")
    @classmethod
    def _check_legacy_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            decode_key(value.get_secret_value(), name="AES_KEY")
        return value

    @model_validator(mode="after")
    def _check_storage(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET")
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def key_ring(self) -> list[tuple[str, bytes]]:
        return parse_key_ring(self.aes_keys.get_secret_value())

    def legacy_key(self) -> bytes | None:
        if self.aes_key_legacy is None or not self.aes_key_legacy.get_secret_value():
            return None
        return decode_key(self.aes_key_legacy.get_secret_value(), name="AES_KEY")

    def blind_key(self) -> bytes:
        return decode_key(self.blind_index_key.get_secret_value(), name="BLIND_INDEX_KEY")

    def providers(self) -> dict[str, bool]:
        """Which providers have credentials (configured) — shown in /health."""
        return {
            "voluum": bool(self.voluum_access_id and self.voluum_access_key),
            "ongage": bool(
                self.ongage_list_id and self.ongage_username and self.ongage_password
                and self.ongage_account_code
            ),
            "messagewhiz": bool(self.messagewhiz_api_key),
            "hlr": bool(self.hlr_api_key and self.hlr_api_secret),
            "sqs": bool(self.sqs_queue_url),
            "gsm_fusion": bool(self.gsm_fusion_username and self.gsm_fusion_api_key),
            "dhru": bool(self.dhru_accounts),
        }


def parse_key_ring(text: str) -> list[tuple[str, bytes]]:
    ring: list[tuple[str, bytes]] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        kid, sep, key = entry.partition(":")
        if not sep or not kid.strip() or not kid.strip().isalnum() or len(kid.strip()) > 16:
            raise ValueError("AES_KEYS entries must look like 'kid:base64key' (kid alphanumeric, ≤16 chars)")
        ring.append((kid.strip(), decode_key(key, name=f"AES_KEYS[{kid.strip()}]")))
    if not ring:
        raise ValueError("AES_KEYS must hold at least one 'kid:base64key' entry")
    if len({kid for kid, _ in ring}) != len(ring):
        raise ValueError("AES_KEYS key ids must be unique")
    return ring


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one clear message naming each variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ("?",)
            name = str(loc[0])
            field = Settings.model_fields.get(name)
            env = field.alias if field is not None and field.alias else name.upper()
            problems.append(f"{env}: {err.get('msg')}")
        raise SettingsError("invalid configuration — " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
