import pytest

from realtime.config import ConfigError, load_settings
from tests.conftest import cli

GOOD = {"UNIDESK_SECRET": "s" * 40}


def test_defaults_are_the_embedded_ones():
    s = load_settings(GOOD)
    assert (s.host, s.port, s.redis_url) == ("127.0.0.1", 8000, None)
    assert s.database_url == "sqlite+aiosqlite:///unidesk.db"


def test_database_urls_get_their_async_driver():
    s = load_settings({**GOOD, "UNIDESK_DATABASE_URL": "postgresql://u@h/db"})
    assert s.database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    "name,value",
    [
        ("UNIDESK_PORT", "eighty"),
        ("UNIDESK_PORT", "70000"),
        ("UNIDESK_DATABASE_URL", "mysql://x/y"),
        ("UNIDESK_REDIS_URL", "http://localhost"),
        ("UNIDESK_SECRET", "short"),
        ("UNIDESK_HEARTBEAT_SECONDS", "-1"),
        ("UNIDESK_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({**GOOD, name: value})


def test_serve_without_a_secret_is_refused():
    with pytest.raises(ConfigError, match="UNIDESK_SECRET"):
        load_settings({})


def test_embedded_default_makes_and_keeps_a_secret(tmp_path):
    env = {"UNIDESK_SECRET_FILE": str(tmp_path / "secret")}
    a = load_settings(env, embedded=True)
    b = load_settings(env, embedded=True)
    assert len(a.secret) >= 32 and a.secret == b.secret
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_cli_prints_one_line_and_exits_2_on_a_bad_value():
    out = cli({"UNIDESK_PORT": "nope", "UNIDESK_SECRET": "s" * 40}, "serve")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["unidesk: UNIDESK_PORT='nope' is not a whole number"]


def test_sip_over_tls_needs_readable_certificate_and_key(tmp_path):
    assert load_settings(GOOD).sip_tls_port == 0
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    with pytest.raises(ConfigError, match="needs UNIDESK_SIP_TLS_CERT"):
        load_settings({**GOOD, "UNIDESK_SIP_TLS_PORT": "5061"})
    with pytest.raises(ConfigError, match="UNIDESK_SIP_TLS_KEY='/nowhere/key.pem' is not a file"):
        load_settings({**GOOD, "UNIDESK_SIP_TLS_PORT": "5061", "UNIDESK_SIP_TLS_CERT": str(cert),
                       "UNIDESK_SIP_TLS_KEY": "/nowhere/key.pem"})
    with pytest.raises(ConfigError, match="UNIDESK_SIP_PORT too"):
        load_settings({**GOOD, "UNIDESK_SIP_TLS_PORT": "5060", "UNIDESK_SIP_TLS_CERT": str(cert),
                       "UNIDESK_SIP_TLS_KEY": str(key)})
    s = load_settings({**GOOD, "UNIDESK_SIP_TLS_PORT": "5061", "UNIDESK_SIP_TLS_CERT": str(cert),
                       "UNIDESK_SIP_TLS_KEY": str(key)})
    assert (s.sip_tls_port, s.sip_tls_cert, s.sip_tls_key) == (5061, str(cert), str(key))


def test_sip_lanes_default_to_one_and_their_ports_must_not_clash(tmp_path):
    s = load_settings(GOOD)
    assert (s.sip_lanes, s.sip_lane_port) == (1, 0)
    s = load_settings({**GOOD, "UNIDESK_SIP_LANES": "8"})
    assert (s.sip_lanes, s.sip_lane_port) == (8, 0)  # lanes 1-7 on 5070-5076
    with pytest.raises(ConfigError, match="UNIDESK_SIP_LANES"):
        load_settings({**GOOD, "UNIDESK_SIP_LANES": "0"})
    with pytest.raises(ConfigError, match="UNIDESK_SIP_LANES"):
        load_settings({**GOOD, "UNIDESK_SIP_LANES": "65"})
    with pytest.raises(ConfigError, match=r"lane ports 5055-5061 clash with \[5060\]"):
        load_settings({**GOOD, "UNIDESK_SIP_LANES": "8", "UNIDESK_SIP_LANE_PORT": "5055"})
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    with pytest.raises(ConfigError, match=r"clash with \[5070\]"):
        load_settings({**GOOD, "UNIDESK_SIP_LANES": "3", "UNIDESK_SIP_TLS_PORT": "5070",
                       "UNIDESK_SIP_TLS_CERT": str(cert), "UNIDESK_SIP_TLS_KEY": str(key)})
