"""The engine's settings, read from EARLYHELP_* environment variables (CONTRACT.md, "Configuration")."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672//"


class Settings(BaseSettings):
    """Every setting is optional; the defaults run a single engine on this machine."""

    model_config = SettingsConfigDict(env_prefix="EARLYHELP_", extra="ignore")

    broker_url: str = DEFAULT_BROKER_URL
    # An SQLite file in the working folder is the embedded default; PostgreSQL
    # (postgresql+psycopg://...) is production and the only choice for several workers.
    database_url: str = Field(default_factory=lambda: f"sqlite:///{Path.cwd() / 'earlyhelp.sqlite'}")
    sla_scan_interval: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Local configuration with Kent's values as the shipped default (DOMAIN.md).
    districts: list[str] | None = None
    sla_policy: Path | None = None
    # How many deliveries the engine holds and handles in one database transaction.
    prefetch: int = Field(default=200, ge=1, le=5000)
    batch_size: int = Field(default=100, ge=1, le=5000)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("EARLYHELP_DATABASE_URL must be an sqlite:/// file or a postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @property
    def is_memory_broker(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def district_names(self) -> list[str]:
        from earlyhelp.schemas import DEFAULT_DISTRICTS

        return list(self.districts or DEFAULT_DISTRICTS)


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
