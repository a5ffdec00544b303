"""The engine's settings, read from EARLYHELP_* environment variables (docs/contract.md, "Configuration")."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, FilePath, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from earlyhelp.secrets import SecretUrl

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672//"


class Settings(BaseSettings):
    """Every setting is optional; the defaults run a single engine on this machine."""

    # hide_input_in_errors: a bad value's error must not quote it (a URL carries its password).
    model_config = SettingsConfigDict(env_prefix="EARLYHELP_", extra="ignore", hide_input_in_errors=True)

    # Held as SecretUrl (a str, masked in repr): usable as plain strings, never printed with a password.
    broker_url: str = Field(default=DEFAULT_BROKER_URL, validate_default=True)
    # An SQLite file in the working folder is the embedded default; PostgreSQL
    # (postgresql+psycopg://...) is production and the only choice for several workers.
    database_url: str = Field(default_factory=lambda: f"sqlite:///{Path.cwd() / 'earlyhelp.sqlite'}",
                              validate_default=True)
    sla_scan_interval: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Local configuration with Kent's values as the shipped default (docs/domain.md).
    districts: list[str] | None = None
    sla_policy: Path | None = None
    # A TOML file naming each broker user and what it may send (docs/contract.md, "Senders and what each may
    # do"); without it every sender may do everything, and `serve` says so at start.
    senders: Path | None = None
    # How many deliveries the engine holds and handles in one database transaction.
    prefetch: int = Field(default=200, ge=1, le=5000)
    batch_size: int = Field(default=100, ge=1, le=5000)
    # Bytes of unacked bodies the engine takes into a batch before it stops draining deliveries (RabbitMQ
    # ignores basic.qos prefetch_size): with prefetch alone, 200 large messages were held at once.
    max_unacked_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    # The engine's broker user, for `earlyhelp dead-letters` run as an operator's own user: copies whose
    # user_id is the engine's are believed (docs/contract.md). Default: the user(s) in broker_url.
    engine_user: str | None = None
    # A CA certificate file (PEM) the broker's server certificate must chain to, for a private CA: used by
    # the engine (kombu) and the pika clients with amqps:// URLs, the host name checked too. Without it
    # amqps:// is verified against the system's CAs. Set with an amqp:// URL it is an error, not plaintext.
    broker_ca_file: FilePath | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("EARLYHELP_DATABASE_URL must be an sqlite:/// file or a postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return SecretUrl(value)

    @field_validator("broker_url")
    @classmethod
    def _secret_broker(cls, value: str) -> str:
        return SecretUrl(value)

    @field_validator("broker_ca_file")
    @classmethod
    def _ca_needs_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        urls = [u.strip() for u in str(info.data.get("broker_url") or "").split(";") if u.strip()]
        if value is not None and not all(u.startswith("amqps://") for u in urls):
            raise ValueError("EARLYHELP_BROKER_CA_FILE is set but EARLYHELP_BROKER_URL is not amqps://: "
                             "refusing to connect without TLS")
        return value

    def __repr_args__(self):
        # Masks every text setting, not only the two URLs: model_copy(update=...) skips the validators
        # above, and another setting (a management URL, say) may carry a password too.
        for name, value in super().__repr_args__():
            yield name, (SecretUrl(value) if isinstance(value, str) else value)

    @property
    def is_memory_broker(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def district_names(self) -> list[str]:
        from earlyhelp.schemas import DEFAULT_DISTRICTS

        return list(self.districts or DEFAULT_DISTRICTS)


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
