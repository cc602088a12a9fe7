"""The API's configuration: one typed object read once from the environment (and ``.env``).

Every variable of ``docs/api.md`` is a field here. Start-up rules that depend on ``APP_ENV`` live in
validators, so an invalid configuration never reaches the application: ``python -m botmox_api``
turns the ``ValidationError`` into one line on stderr and exit code 2 (see ``describe_config_error``).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from botmox_api.model import TENANT_ID_PATTERN, DataBackend

MIN_INTERNAL_TOKEN_LENGTH: Final = 32
MIN_JWT_SECRET_LENGTH: Final = 32
# uvicorn worker processes; each is a whole interpreter with its own pools, so far more than the
# machine's cores only costs memory and database connections.
MAX_API_WORKERS: Final = 64
# Shadow reads: the comparisons waiting for a worker (more are dropped and counted), the workers
# (each has one read of the other backend in flight at most) and the comparisons started per second.
MAX_SHADOW_QUEUE: Final = 100_000
MAX_SHADOW_WORKERS: Final = 64
MAX_SHADOW_RATE: Final = 100_000
# libpq's sslmode values that refuse a connection without TLS.
TLS_SSLMODES: Final = ("require", "verify-ca", "verify-full")
_LOCAL_HOSTS: Final = frozenset({"localhost", ""})

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AppEnv = Literal["development", "production"]
LogFormat = Literal["json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# Fields whose value must never be echoed, not even in a start-up error.
_SECRET_FIELDS: Final = frozenset(
    {
        "internal_api_token",
        "internal_infra_token",
        "supabase_jwt_secret",
        "supabase_db_url",
    }
)


class ApiSettings(BaseSettings):
    """Every variable of the API (``docs/api.md``, "Variables"); names are the upper-cased field names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # VAR= counts as unset, like the legacy server
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    app_env: AppEnv = "development"
    data_backend: DataBackend = "rtdb"

    supabase_url: str | None = None
    # Public (the anon / publishable key): only lets the REST transport's calls through the gateway.
    supabase_anon_key: str | None = None
    supabase_db_url: SecretStr | None = None
    # asyncpg's prepared-statement cache per connection (its default, 100); 0 behind a
    # transaction-mode pooler (Supavisor port 6543, PgBouncer), which cannot keep prepared statements.
    supabase_db_statement_cache_size: int = Field(default=100, ge=0)
    supabase_jwt_secret: SecretStr | None = None
    supabase_jwt_audience: str = "authenticated"
    supabase_jwt_issuer: str | None = None

    firebase_database_url: str | None = None
    firebase_project_id: str | None = None
    google_application_credentials: str | None = None
    firebase_database_emulator_host: str | None = None
    firebase_auth_emulator_host: str | None = None
    # Per RTDB store (settings, storage policy): the calls one store has in flight at once.
    rtdb_max_connections: int = Field(default=100, ge=1, le=1000)

    default_tenant_id: str = "default"
    allow_insecure_dev_tokens: bool = False
    internal_api_token: SecretStr | None = None
    internal_infra_token: SecretStr | None = None

    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("http://localhost:5173", "http://127.0.0.1:5173")
    forwarded_allow_ips: Annotated[tuple[IpNetwork, ...], NoDecode] = ()
    api_rate_limit_max: int = Field(default=6000, ge=1)
    api_rate_limit_window_s: int = Field(default=60, ge=1, le=86_400)
    api_max_body_bytes: int = Field(default=65_536, ge=1, le=16 * 1024 * 1024)
    require_supabase_ready: bool = False
    require_rtdb_ready: bool = False
    health_cache_ttl_s: float = Field(default=1.0, ge=0, le=60)
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    # After each storage_policy read, compare with the other backend off the request path
    # (shadow_reads.py); the other backend must be configured (stores.factory refuses otherwise).
    storage_policy_shadow: bool = False
    storage_policy_shadow_queue: int = Field(default=1000, ge=1, le=MAX_SHADOW_QUEUE)
    storage_policy_shadow_workers: int = Field(default=4, ge=1, le=MAX_SHADOW_WORKERS)
    storage_policy_shadow_rate: float = Field(default=100, gt=0, le=MAX_SHADOW_RATE)

    # The agent tunnel (docs/agent-protocol.md): the heartbeat terms its welcome announces (the server
    # closes 4408 after the timeout without a heartbeat) and the sweep of commands past their deadline.
    agent_heartbeat_interval_s: int = Field(default=15, ge=1, le=3600)
    agent_heartbeat_timeout_s: int = Field(default=45, ge=2, le=7200)
    agent_sweep_interval_s: float = Field(default=5.0, gt=0, le=3600)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    # Each worker counts the rate limit on its own (docs/api.md, "Workers").
    api_workers: int = Field(default=1, ge=1, le=MAX_API_WORKERS)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"

    @field_validator("app_env", "data_backend", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            # Origins compare case-insensitively; a trailing slash is not part of an origin.
            return tuple(o.strip().rstrip("/").lower() for o in value.split(",") if o.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _listed_origins_in_production(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if "*" in value and info.data.get("app_env") == "production":
            raise ValueError("* (any origin) is refused when APP_ENV=production: list the origins")
        return value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks: list[IpNetwork] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return tuple(networks)

    @field_validator("default_tenant_id")
    @classmethod
    def _tenant_shape(cls, value: str) -> str:
        value = value.strip().lower()
        if not TENANT_ID_PATTERN.match(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9_-]{0,62}$")
        return value

    @field_validator("firebase_database_emulator_host", "firebase_auth_emulator_host")
    @classmethod
    def _host_port(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("app_env") == "production":
            # In emulator mode firebase-admin accepts tokens with any signature.
            raise ValueError("must not be set when APP_ENV=production")
        if "/" in value or ":" not in value:
            raise ValueError("must be host:port, without a scheme")
        return value

    @field_validator("internal_api_token", "internal_infra_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        production = info.data.get("app_env") == "production"
        if value is None:
            if production:
                raise ValueError(
                    f"is required when APP_ENV=production (at least {MIN_INTERNAL_TOKEN_LENGTH} characters)"
                )
            return None
        if len(value.get_secret_value()) < MIN_INTERNAL_TOKEN_LENGTH and (
            production or not info.data.get("allow_insecure_dev_tokens")
        ):
            raise ValueError(
                f"must be at least {MIN_INTERNAL_TOKEN_LENGTH} characters"
                + ("" if production else " (ALLOW_INSECURE_DEV_TOKENS=true permits shorter in development)")
            )
        return value

    @field_validator("firebase_database_url")
    @classmethod
    def _no_emulator_url_in_production(cls, value: str | None, info: ValidationInfo) -> str | None:
        production = info.data.get("app_env") == "production"
        if value is not None and production and urlsplit(value.strip()).scheme.lower() == "http":
            # An http:// URL is emulator mode for firebase-admin: any token signature is accepted.
            raise ValueError("an http:// URL (emulator mode) is refused when APP_ENV=production")
        return value

    @field_validator("supabase_jwt_secret")
    @classmethod
    def _strong_jwt_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if (
            value is not None
            and info.data.get("app_env") == "production"
            and len(value.get_secret_value()) < MIN_JWT_SECRET_LENGTH
        ):
            raise ValueError(f"must be at least {MIN_JWT_SECRET_LENGTH} characters when APP_ENV=production")
        return value

    @field_validator("supabase_db_url")
    @classmethod
    def _tls_to_remote_database(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or info.data.get("app_env") != "production":
            return value
        try:
            params = conninfo_to_dict(value.get_secret_value())
        except ProgrammingError:
            # libpq's message quotes the DSN, password included: never pass it on.
            raise ValueError("is not a valid PostgreSQL connection string") from None
        hosts = [*str(params.get("host", "")).split(","), *str(params.get("hostaddr", "")).split(",")]
        remote = [host for host in hosts if not _is_local_host(host)]
        if remote and params.get("sslmode") not in TLS_SSLMODES:
            raise ValueError(
                f"connects to {', '.join(remote)} without TLS: add sslmode=require (or verify-ca, "
                "verify-full) when APP_ENV=production"
            )
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> ApiSettings:
        if self.app_env == "production" and self.allow_insecure_dev_tokens:
            raise ValueError("ALLOW_INSECURE_DEV_TOKENS=true is refused when APP_ENV=production")
        if self.agent_heartbeat_timeout_s <= self.agent_heartbeat_interval_s:
            raise ValueError("AGENT_HEARTBEAT_TIMEOUT_S must exceed AGENT_HEARTBEAT_INTERVAL_S")
        return self

    # Plain accessors, so callers never handle SecretStr themselves.
    def secret(
        self,
        name: Literal[
            "internal_api_token",
            "internal_infra_token",
            "supabase_jwt_secret",
            "supabase_db_url",
        ],
    ) -> str | None:
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def _is_local_host(host: str) -> bool:
    """Loopback names and addresses, and Unix-socket directories (libpq's default when unset)."""
    host = host.strip().lower()
    if host in _LOCAL_HOSTS or host.startswith("/") or host.startswith("@"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is the one line printed at start-up."""


def _allowed(error_type: str, ctx: dict[str, object] | None) -> str:
    if ctx and "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    return ""


def describe_config_error(error: ValidationError) -> str:
    """One line naming each variable, its value and what is allowed; secret values are redacted."""
    parts: list[str] = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"]]
        field = loc[0] if loc else ""
        variable = field.upper() if field else "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        if not field:
            parts.append(message)
            continue
        raw = item.get("input")
        shown = "<redacted>" if field in _SECRET_FIELDS else repr(raw)
        allowed = _allowed(item["type"], item.get("ctx"))
        text = f"{variable}={shown} is invalid: {message}"
        if allowed and allowed.split(": ", 1)[1] not in message:
            text += f" ({allowed})"
        parts.append(text)
    return "; ".join(parts)


def load_settings(env_file: str | None = ".env") -> ApiSettings:
    """Read the configuration once; raises ``ConfigError`` with the start-up line."""
    try:
        return ApiSettings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        raise ConfigError(describe_config_error(error)) from None
