"""Settings from the environment, exactly as operators set them: names, defaults, refusals."""

import os
import stat

import pytest

from app.core.config import Listen, load_settings
from app.core.errors import ConfigError, OperatorError
from app.core.instance import ensure_instance, secret_key


def test_defaults_make_a_working_instance_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.instance == tmp_path / "instance"
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'forewarn.db'}"
    assert settings.redis_url is None
    assert settings.web_listen == Listen("127.0.0.1", 8000)
    assert settings.intake_listen == Listen("127.0.0.1", 2525)
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.security_address == "security@localhost"
    assert settings.from_address == "security@localhost"
    assert settings.announce_address is None
    assert settings.smtp_relay is None
    assert settings.mail_out == tmp_path / "instance" / "mail-out"
    assert settings.embargo_days == 90
    assert settings.fix_target_days == 30
    assert settings.max_message_bytes == 26214400
    assert settings.require_2fa is False
    assert settings.key_passphrase_file is None


def test_every_variable_is_read(tmp_path):
    env = {
        "FOREWARN_INSTANCE": str(tmp_path / "i"),
        "FOREWARN_DATABASE_URL": "postgresql://fw@db.internal:5433/forewarn",
        "FOREWARN_REDIS_URL": "redis://cache:6380/2",
        "FOREWARN_WEB_LISTEN": "0.0.0.0:9000",
        "FOREWARN_INTAKE_LISTEN": "[::1]:2526",
        "FOREWARN_BASE_URL": "https://security.example.org/",
        "FOREWARN_SECURITY_ADDRESS": "security@example.org",
        "FOREWARN_FROM_ADDRESS": "noreply@example.org",
        "FOREWARN_ANNOUNCE_ADDRESS": "announce@lists.example.org",
        "FOREWARN_SMTP_RELAY": "relay.example.org:587",
        "FOREWARN_SECRET_KEY": "s3cret",
        "FOREWARN_EMBARGO_DAYS": "60",
        "FOREWARN_FIX_TARGET_DAYS": "14",
        "FOREWARN_MAX_MESSAGE_BYTES": "1000",
        "FOREWARN_CNA_ORG_ID": "b3476cb9-2e3d-41a6-98d0-0f47421a65b6",
        "FOREWARN_CNA_SHORT_NAME": "example",
        "FOREWARN_VENDOR": "Example",
        "FOREWARN_PRODUCT": "exampleOS",
        "FOREWARN_REPO_URL": "https://git.example.org/os",
        "FOREWARN_KEY_PASSPHRASE_FILE": str(tmp_path / "pass"),
    }
    s = load_settings(env)
    assert s.instance == tmp_path / "i"
    assert s.database_url == "postgresql://fw@db.internal:5433/forewarn"
    assert s.redis_url == "redis://cache:6380/2"
    assert s.web_listen == Listen("0.0.0.0", 9000)
    assert s.intake_listen == Listen("::1", 2526)
    assert s.base_url == "https://security.example.org"
    assert (s.security_address, s.from_address) == ("security@example.org", "noreply@example.org")
    assert s.announce_address == "announce@lists.example.org"
    assert s.smtp_relay == Listen("relay.example.org", 587)
    assert s.secret_key_env == "s3cret"
    assert (s.embargo_days, s.fix_target_days, s.max_message_bytes) == (60, 14, 1000)
    assert s.cna_org_id == "b3476cb9-2e3d-41a6-98d0-0f47421a65b6"
    assert s.cna_short_name == "example"
    assert (s.vendor, s.product, s.repo_url) == (
        "Example",
        "exampleOS",
        "https://git.example.org/os",
    )
    assert s.key_passphrase_file == tmp_path / "pass"
    assert s.require_2fa is True  # https base URL


def test_two_factor_can_be_switched_explicitly():
    assert load_settings({"FOREWARN_REQUIRE_2FA": "1"}).require_2fa is True
    https = {"FOREWARN_BASE_URL": "https://x.example", "FOREWARN_REQUIRE_2FA": "0"}
    assert load_settings(https).require_2fa is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FOREWARN_DATABASE_URL", "mysql://root@localhost/x"),
        ("FOREWARN_DATABASE_URL", "sqlite:///"),
        ("FOREWARN_WEB_LISTEN", "8000"),
        ("FOREWARN_INTAKE_LISTEN", "127.0.0.1:99999"),
        ("FOREWARN_SMTP_RELAY", "relay.example.org"),
        ("FOREWARN_EMBARGO_DAYS", "ninety"),
        ("FOREWARN_FIX_TARGET_DAYS", "-3"),
        ("FOREWARN_MAX_MESSAGE_BYTES", "0"),
        ("FOREWARN_REQUIRE_2FA", "maybe"),
        ("FOREWARN_BASE_URL", "ftp://x"),
        ("FOREWARN_SECURITY_ADDRESS", "security"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(variable, value):
    with pytest.raises(ConfigError) as excinfo:
        load_settings({variable: value})
    assert str(excinfo.value).startswith(variable)
    assert "\n" not in str(excinfo.value)


def test_instance_folder_is_created_private(tmp_path):
    settings = load_settings({"FOREWARN_INSTANCE": str(tmp_path / "a" / "instance")})
    ensure_instance(settings)
    assert stat.S_IMODE(os.stat(settings.instance).st_mode) == 0o700


def test_secret_key_is_generated_once_and_kept(tmp_path):
    settings = load_settings({"FOREWARN_INSTANCE": str(tmp_path / "instance")})
    first = secret_key(settings)
    assert len(first) >= 40
    assert secret_key(load_settings({"FOREWARN_INSTANCE": str(tmp_path / "instance")})) == first
    assert stat.S_IMODE(os.stat(settings.secret_key_file).st_mode) == 0o600


def test_secret_key_from_the_environment_wins(tmp_path):
    env = {"FOREWARN_INSTANCE": str(tmp_path / "instance"), "FOREWARN_SECRET_KEY": "given"}
    assert secret_key(load_settings(env)) == "given"
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_an_instance_that_is_a_file_is_refused_with_the_fix(tmp_path):
    (tmp_path / "instance").write_text("not a folder")
    with pytest.raises(OperatorError, match="FOREWARN_INSTANCE"):
        ensure_instance(load_settings({"FOREWARN_INSTANCE": str(tmp_path / "instance")}))


def test_an_instance_that_cannot_be_created_is_refused_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OperatorError, match="FOREWARN_INSTANCE"):
        ensure_instance(load_settings({"FOREWARN_INSTANCE": str(tmp_path / "file" / "instance")}))
