from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import SettingsError
from hub.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "HUB_BUS",
        "HUB_KAFKA_BOOTSTRAP_SERVERS",
        "HUB_POLICY_ENGINE",
        "HUB_DATABASE_URL",
        "HUB_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUB_CONFIG", str(tmp_path / "absent.toml"))


def test_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.bus == "local"
    assert settings.policy_engine == "embedded"
    assert settings.effective_database_url == "sqlite:///var/hub.db"
    assert settings.effective_keystore_path == Path("var/keystore.json")


def test_unknown_bus_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_BUS", "rabbitmq")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "HUB_BUS" in message and "'local'" in message and "'kafka'" in message and "rabbitmq" in message


def test_kafka_without_servers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_BUS", "kafka")
    with pytest.raises(SettingsError, match="HUB_KAFKA_BOOTSTRAP_SERVERS is required when HUB_BUS=kafka"):
        load_settings()


def test_kafka_servers_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_BUS", "kafka")
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092, broker-2:9092")
    assert load_settings().kafka_bootstrap_servers == ["10.0.0.1:9092", "broker-2:9092"]
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP_SERVERS", "broker-without-port")
    with pytest.raises(SettingsError, match="HUB_KAFKA_BOOTSTRAP_SERVERS: expected host:port"):
        load_settings()


def test_policy_engine_must_be_embedded_or_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_POLICY_ENGINE", "http://127.0.0.1:8181/")
    assert load_settings().policy_engine == "http://127.0.0.1:8181"
    monkeypatch.setenv("HUB_POLICY_ENGINE", "opa")
    with pytest.raises(SettingsError, match="HUB_POLICY_ENGINE: expected 'embedded' or an http"):
        load_settings()


def test_database_url_scheme_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", "mysql://db/hub")
    with pytest.raises(SettingsError, match="HUB_DATABASE_URL: expected a sqlite: or postgresql:"):
        load_settings()


def test_hub_toml_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('bus = "kafka"\nkafka_bootstrap_servers = ["k:9092"]\nvar_dir = "/srv/hub"\n')
    monkeypatch.setenv("HUB_CONFIG", str(config))
    settings = load_settings()
    assert settings.bus == "kafka" and settings.var_dir == Path("/srv/hub")
    monkeypatch.setenv("HUB_BUS", "local")
    assert load_settings().bus == "local"


def test_unknown_key_in_hub_toml_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('buss = "kafka"\n')
    monkeypatch.setenv("HUB_CONFIG", str(config))
    with pytest.raises(SettingsError, match="HUB_BUSS: unknown setting"):
        load_settings()
