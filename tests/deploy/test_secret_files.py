"""Secrets from ``*_FILE`` variables (Docker and Kubernetes secrets mounted as files), and the Secret
placeholder of deploy/k8s that must stop the API instead of opening it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodedrop_rq.settings import API_TOKEN_PLACEHOLDER, Settings, SettingsError


def test_values_come_from_the_files(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("redis://:s3cret@redis.internal:6380/2\n")
    (tmp_path / "token").write_text("t0ken-from-file\r\n")
    settings = Settings.from_env({"REDIS_URL_FILE": str(tmp_path / "url"),
                                  "NODEDROP_API_TOKEN_FILE": str(tmp_path / "token")})
    assert settings.redis_url == "redis://:s3cret@redis.internal:6380/2"
    assert settings.redis_url_given
    assert settings.api_token == "t0ken-from-file"


def test_the_plain_variables_still_work_and_files_are_optional() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://a:1/0", "NODEDROP_API_TOKEN": "plain"})
    assert (settings.redis_url, settings.api_token) == ("redis://a:1/0", "plain")
    assert Settings.from_env({"REDIS_URL_FILE": "  "}).redis_url_given is False


def test_a_file_value_is_checked_like_the_variable(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("http://:pw@redis:6379/0")
    with pytest.raises(SettingsError, match="REDIS_URL") as caught:
        Settings.from_env({"REDIS_URL_FILE": str(tmp_path / "url")})
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("content", ["", "\n"])
def test_an_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "token").write_text(content)
    with pytest.raises(SettingsError, match="NODEDROP_API_TOKEN_FILE=.*empty"):
        Settings.from_env({"NODEDROP_API_TOKEN_FILE": str(tmp_path / "token")})


def test_a_missing_file_names_the_variable_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(SettingsError, match=f"REDIS_URL_FILE='{missing}': cannot read it"):
        Settings.from_env({"REDIS_URL_FILE": str(missing)})


def test_the_variable_and_its_file_with_different_values_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    with pytest.raises(SettingsError, match="set only one") as caught:
        Settings.from_env({"NODEDROP_API_TOKEN": "from-env", "NODEDROP_API_TOKEN_FILE": str(tmp_path / "token")})
    assert "from-file" not in str(caught.value) and "from-env" not in str(caught.value)


def test_a_child_given_the_resolved_value_and_the_file_starts(tmp_path: Path) -> None:
    """`nodedrop-rq demo` passes REDIS_URL on to its worker pool, which inherits REDIS_URL_FILE as well."""
    (tmp_path / "url").write_text("redis://redis.internal:6379/0\n")
    env = {"REDIS_URL": "redis://redis.internal:6379/0", "REDIS_URL_FILE": str(tmp_path / "url")}
    settings = Settings.from_env(env)
    assert settings.redis_url == "redis://redis.internal:6379/0"


@pytest.mark.parametrize("source", ["env", "file"])
def test_the_deploy_placeholder_token_fails_closed(tmp_path: Path, source: str) -> None:
    token = f"{API_TOKEN_PLACEHOLDER}-generate-one-with-openssl-rand-hex-32"
    (tmp_path / "token").write_text(token)
    env = {"NODEDROP_API_TOKEN": token} if source == "env" else {"NODEDROP_API_TOKEN_FILE": str(tmp_path / "token")}
    with pytest.raises(SettingsError, match="placeholder") as caught:
        Settings.from_env(env)
    assert token not in str(caught.value)


def test_the_shipped_secret_holds_the_placeholder_only() -> None:
    """The Secret in deploy/k8s must not carry a token anyone could use."""
    import yaml

    from tests.conftest import ROOT

    secret = next(doc for doc in yaml.safe_load_all((ROOT / "deploy/k8s/base/config.yaml").read_text())
                  if doc["kind"] == "Secret")
    token = secret["stringData"]["NODEDROP_API_TOKEN"]
    assert token.startswith(API_TOKEN_PLACEHOLDER)
    with pytest.raises(SettingsError):
        Settings.from_env({"NODEDROP_API_TOKEN": token})
