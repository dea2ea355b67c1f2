"""Runtime settings: embedded defaults for one machine, real engines when configured.

Values come, highest priority first, from ``HUB_*`` environment variables, then an optional
``hub.toml`` (path overridable with ``HUB_CONFIG``), then the embedded defaults. Every invalid value
becomes a :class:`~hub.errors.SettingsError` whose message names the variable and what it expects,
because operators read these errors in a terminal, not in a traceback.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from hub.errors import SettingsError

ENV_PREFIX = "HUB_"
DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    """Where the hub keeps its state and which engines it talks to."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    profile: Literal["dev", "production"] = Field(
        default="dev",
        description="'production' refuses development conveniences such as the dev identity provider",
    )
    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="directory for embedded state")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file var_dir/hub.db",
    )
    audit_database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the audit log; empty means a SQLite file audit.db beside a SQLite store, or the "
            "store's own database on PostgreSQL"
        ),
    )
    bus: Literal["local", "kafka"] = Field(default="local", description="'local' (embedded log) or 'kafka'")
    kafka_bootstrap_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host:port list, required when bus is 'kafka'"
    )
    kafka_namespace: str = Field(default="", description="prefix of every topic and consumer group on Kafka")
    policy_engine: str = Field(default="embedded", description="'embedded' or the http(s) URL of an OPA server")
    keystore_path: Path | None = Field(
        default=None, description="embedded keystore file; empty means var_dir/keystore.json"
    )
    keys_database_url: str = Field(
        default="", description="database of wrapped data keys; empty means a SQLite file beside the keystore"
    )
    key_suite: Literal["AES_256_GCM", "SM4_GCM"] = Field(
        default="AES_256_GCM",
        description="AEAD suite for a new keystore (SM4_GCM for GB/T 39786 deployments)",
    )
    audit_origin: str = Field(
        default="hub.local/audit", pattern=r"^[^\s+]+$", description="the audit log's origin line and key name"
    )
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0, description="checkpoint interval when the log grew")
    audit_tsa_url: str | None = Field(default=None, description="RFC 3161 TSA for checkpoint time-stamps (optional)")
    audit_tsa_cert: Path | None = Field(default=None, description="PEM certificate of that TSA")
    audit_tsa_root: Path | None = Field(default=None, description="PEM root certificate(s) the TSA chains to")
    api_public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the hub's external base URL; signed requests cover @target-uri under it",
    )
    oidc_issuer: str = Field(default="", description="OIDC issuer of officer and resident tokens (iss)")
    oidc_audience: str = Field(default="hub", description="the audience (aud) tokens must name")
    oidc_jwks_url: str = Field(default="", description="the issuer's JWKS; empty means discovery from the issuer")
    oidc_leeway_seconds: int = Field(default=60, ge=0, le=300, description="clock skew allowed on exp/nbf/iat")
    oidc_mfa_acr: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["urn:hub:acr:mfa", "phr", "phrh"],
        description="acr values that show multi-factor authentication (amr 'mfa', 'otp' or 'hwk' also do)",
    )
    dev_idp: bool = Field(
        default=False, description="serve a development identity provider under /dev-idp (refused in production)"
    )
    connector_workers: int = Field(
        default=-1,
        ge=-1,
        le=64,
        description="processes that prepare and publish each connector's batches beside the one that reads "
        "the source; -1 means one per CPU (at most 8), 0 means none (all in one process)",
    )
    master_passphrase: SecretStr | None = Field(default=None, description="unlocks the keystore (scrypt)")
    master_key: SecretStr | None = Field(default=None, description="unlocks the keystore directly (hex/base64)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("HUB_CONFIG", "hub.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    @field_validator("kafka_bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> Any:
        # Operators write "host1:9092,host2:9092" in an environment variable; accept it as a list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("oidc_mfa_acr", mode="before")
    @classmethod
    def _split_acr(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_public_url", "oidc_issuer", "oidc_jwks_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_dev_idp_in_production(self) -> Settings:
        if self.dev_idp and self.profile == "production":
            raise ValueError("HUB_DEV_IDP cannot be enabled with HUB_PROFILE=production")
        return self

    @property
    def effective_oidc_issuer(self) -> str:
        return self.oidc_issuer or (f"{self.api_public_url}/dev-idp" if self.dev_idp else "")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port entries, got {server!r}")
        return value

    @field_validator("policy_engine")
    @classmethod
    def _check_policy_engine(cls, value: str) -> str:
        if value == "embedded" or value.startswith(("http://", "https://")):
            return value.rstrip("/")
        raise ValueError(f"expected 'embedded' or an http(s) URL of an OPA server, got {value!r}")

    @field_validator("database_url", "keys_database_url", "audit_database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+")):
            raise ValueError(f"expected a sqlite: or postgresql: SQLAlchemy URL, got scheme {value.split(':')[0]!r}")
        return value

    @model_validator(mode="after")
    def _tsa_is_complete(self) -> Settings:
        if self.audit_tsa_url and not (self.audit_tsa_cert and self.audit_tsa_root):
            raise ValueError("HUB_AUDIT_TSA_URL needs HUB_AUDIT_TSA_CERT and HUB_AUDIT_TSA_ROOT (PEM files)")
        return self

    @model_validator(mode="after")
    def _kafka_needs_servers(self) -> Settings:
        if self.bus == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError("HUB_KAFKA_BOOTSTRAP_SERVERS is required when HUB_BUS=kafka")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'hub.db'}"

    @property
    def effective_audit_database_url(self) -> str:
        """Where the audit log lives (its entries, checkpoints, the residents' access index, the use counters).

        A SQLite store keeps it in a file of its own, ``audit.db`` beside the store's: every commit to a SQLite
        file makes every other connection to that file drop its page cache, and the log commits hundreds of
        times a second while person views read records. On PostgreSQL (shared buffers, no such effect) the
        store's database holds it too.
        """
        if self.audit_database_url:
            return self.audit_database_url
        store = make_url(self.effective_database_url)
        if store.get_backend_name() != "sqlite" or not store.database or store.database == ":memory:":
            return self.effective_database_url
        return store.set(database=str(Path(store.database).parent / "audit.db")).render_as_string(hide_password=False)

    @property
    def effective_keystore_path(self) -> Path:
        return self.keystore_path or self.var_dir / "keystore.json"

    @property
    def effective_keys_database_url(self) -> str:
        return self.keys_database_url or f"sqlite:///{self.effective_keystore_path.parent / 'keys.db'}"


def _describe(error: ValidationError) -> str:
    """One line per problem: the environment variable and what it expects."""
    parts = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        message = str(item["msg"]).removeprefix("Value error, ")
        if not loc:
            parts.append(message)
            continue
        variable = ENV_PREFIX + loc[0].upper()
        if item["type"] == "extra_forbidden":
            parts.append(f"{variable}: unknown setting")
        elif item["type"] == "literal_error":
            parts.append(f"{variable}: {message}, got {item.get('input')!r}")
        else:
            parts.append(f"{variable}: {message}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and hub.toml, turning validation errors into one line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(f"invalid settings: {_describe(error)}") from None
    except pydantic_settings.SettingsError as error:
        # Raised by a settings source before validation, e.g. a malformed hub.toml.
        raise SettingsError(f"invalid settings: {error}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
