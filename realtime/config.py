"""Settings read from the environment.

Every variable is checked once at start-up; a bad value raises `ConfigError`
naming the variable, which the CLI prints as one line before exiting with 2.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration variable has a value unidesk cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    # TCP port of the hub's HTTP and websocket listener.
    port: int = 8000
    # SQLAlchemy async URL; sqlite+aiosqlite or postgresql+asyncpg.
    database_url: str = "sqlite+aiosqlite:///unidesk.db"
    # redis:// URL; None means the in-process bus and live state.
    redis_url: str | None = None
    # Prefix of every Redis key, so several installations (or tests) share one server.
    redis_prefix: str = "unidesk"
    # Key that signs JWTs (HS256).
    secret: str = ""
    # Lifetime of an access token, seconds.
    access_ttl: int = 900
    # Lifetime of a refresh token, seconds.
    refresh_ttl: int = 7 * 24 * 3600
    # Clients ping at this interval; a client silent for 2.5 intervals is closed.
    heartbeat_seconds: float = 15.0
    # Largest websocket frame accepted, bytes; a larger one closes with 1009.
    max_frame_bytes: int = 64 * 1024
    # Events kept per stream for resuming clients.
    replay_events: int = 10_000
    # Log as JSON lines (default when stderr is not a terminal).
    log_json: bool | None = None
    log_level: str = "INFO"
    # TURN servers handed to softphones (turn:/turns: URLs) and the coturn `static-auth-secret`
    # that signs their short-lived credentials. None: no ICE servers at all (loopback, one LAN).
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = 3600
    # Music the other party hears while a call is held (a WAV file); unset: a built-in melody.
    hold_music: str | None = None
    # Softphone sessions one media worker takes.
    media_capacity: int = 200
    # Where the media worker listens for SIP (UDP and TCP); port 0: no SIP.
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    # Where the media worker takes audio links from other workers (UDP; webrtc/link.py): an address
    # the other workers reach (default: UNIDESK_SIP_HOST) and a port (0: any free one).
    media_link_host: str | None = None
    media_link_port: int = 0
    # Where media workers write call recordings and the hub reads them (one folder shared by both).
    recordings_dir: str = "recordings"
    # Seconds between runs of the job that deletes recordings past their tenant's retention.
    retention_sweep_seconds: float = 3600.0
    # SIP over TLS on the media worker: the TCP port (0: off), the certificate chain and private key (PEM).
    sip_tls_port: int = 0
    sip_tls_cert: str | None = None
    sip_tls_key: str | None = None
    # Incoming INVITEs per source address (a second on average, and at once), and calls offered to the
    # hub but not decided yet, beyond which the worker answers 503 with Retry-After (bridge/guard.py).
    sip_invite_rate: float = 50.0
    sip_invite_burst: int = 100
    sip_max_pending: int = 64
    # pjsua2 instances ("lanes", bridge/lanes.py) in one media worker, four SIP calls each, behind the
    # one SIP port; lane k > 0 listens on UDP sip_lane_port + k - 1 (0: sip_port + 10).
    sip_lanes: int = 1
    sip_lane_port: int = 0
    # The media worker's GIL switch interval (sys.setswitchinterval), ms. Every SIP lane adds threads
    # that take the GIL 50 times a second per call; at Python's 5 ms the forced hand-overs between them
    # cost more than the work (docs/sip-lanes.md: 30 calls in one worker held at 20 ms, not at 5).
    media_switch_ms: int = 20
    # Seconds a customer's support-session link stays valid (until the customer first comes in).
    support_link_ttl: int = 7200


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _database_url(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite://" + raw.split("://", 1)[1]
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return "postgresql+asyncpg://" + raw.split("://", 1)[1]
    raise ConfigError(
        f"UNIDESK_DATABASE_URL={raw!r}: expected sqlite:///FILE or postgresql://USER@HOST/DB"
    )


def load_settings(
    env: dict[str, str] | None = None, *, embedded: bool = False, need_secret: bool = True
) -> Settings:
    """Read the `UNIDESK_*` variables. `embedded` generates and keeps a secret."""
    env = dict(os.environ if env is None else env)
    host = env.get("UNIDESK_HOST") or "127.0.0.1"
    port = _int(env, "UNIDESK_PORT", 8000, 1, 65535)
    database_url = _database_url(env.get("UNIDESK_DATABASE_URL") or "sqlite:///unidesk.db")
    redis_url = env.get("UNIDESK_REDIS_URL") or None
    if redis_url is not None:
        parts = urlsplit(redis_url)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ConfigError(f"UNIDESK_REDIS_URL={redis_url!r}: expected redis://HOST:PORT/DB")
    prefix = env.get("UNIDESK_REDIS_PREFIX") or "unidesk"
    if not prefix.replace("-", "").replace("_", "").replace(":", "").isalnum():
        raise ConfigError(f"UNIDESK_REDIS_PREFIX={prefix!r}: use letters, digits, '-', '_' or ':'")
    secret = env.get("UNIDESK_SECRET") or ""
    if secret and len(secret) < 32:
        raise ConfigError("UNIDESK_SECRET is shorter than 32 characters")
    if not secret and need_secret:
        if not embedded:
            raise ConfigError("UNIDESK_SECRET is not set (at least 32 random characters)")
        secret = _kept_secret(Path(env.get("UNIDESK_SECRET_FILE") or ".unidesk-secret"))
    log_json_raw = env.get("UNIDESK_LOG_JSON")
    log_json: bool | None = None
    if log_json_raw:
        if log_json_raw not in ("0", "1"):
            raise ConfigError(f"UNIDESK_LOG_JSON={log_json_raw!r}: expected 0 or 1")
        log_json = log_json_raw == "1"
    level = (env.get("UNIDESK_LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"UNIDESK_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR")
    turn_urls = tuple(u.strip() for u in (env.get("UNIDESK_TURN_URLS") or "").split(",") if u.strip())
    for u in turn_urls:
        if not u.startswith(("turn:", "turns:", "stun:")):
            raise ConfigError(f"UNIDESK_TURN_URLS: {u!r} is not a turn:, turns: or stun: URL")
    turn_secret = env.get("UNIDESK_TURN_SECRET") or None
    if turn_urls and any(u.startswith("turn") for u in turn_urls) and not turn_secret:
        raise ConfigError("UNIDESK_TURN_SECRET is not set but UNIDESK_TURN_URLS names a TURN server")
    hold_music = env.get("UNIDESK_HOLD_MUSIC") or None
    if hold_music is not None and not Path(hold_music).is_file():
        raise ConfigError(f"UNIDESK_HOLD_MUSIC={hold_music!r} is not a file")
    sip_port = _int(env, "UNIDESK_SIP_PORT", 5060, 0, 65535)
    tls_port = _int(env, "UNIDESK_SIP_TLS_PORT", 0, 0, 65535)
    tls_cert = env.get("UNIDESK_SIP_TLS_CERT") or None
    tls_key = env.get("UNIDESK_SIP_TLS_KEY") or None
    if tls_port:
        if tls_port == sip_port:
            raise ConfigError(f"UNIDESK_SIP_TLS_PORT={tls_port} is UNIDESK_SIP_PORT too (SIP over TCP listens there)")
        for name, path in (("UNIDESK_SIP_TLS_CERT", tls_cert), ("UNIDESK_SIP_TLS_KEY", tls_key)):
            if path is None:
                raise ConfigError(f"UNIDESK_SIP_TLS_PORT={tls_port} needs {name} (a PEM file)")
            if not Path(path).is_file():
                raise ConfigError(f"{name}={path!r} is not a file")
    sip_lanes = _int(env, "UNIDESK_SIP_LANES", 1, 1, 64)
    lane_port = _int(env, "UNIDESK_SIP_LANE_PORT", 0, 0, 65535)
    if sip_lanes > 1 and sip_port:
        first = lane_port or sip_port + 10
        last = first + sip_lanes - 2
        clash = [p for p in (sip_port, tls_port) if p and first <= p <= last]
        if clash or last > 65535:
            raise ConfigError(f"UNIDESK_SIP_LANES={sip_lanes}: lane ports {first}-{last} clash with"
                              f" {clash or 'the end of the port range'} (set UNIDESK_SIP_LANE_PORT)")
    return Settings(
        sip_tls_port=tls_port,
        support_link_ttl=_int(env, "UNIDESK_SUPPORT_LINK_TTL", 7200, 60, 7 * 86400),
        sip_tls_cert=tls_cert,
        sip_tls_key=tls_key,
        turn_urls=turn_urls,
        turn_secret=turn_secret,
        turn_ttl=_int(env, "UNIDESK_TURN_TTL", 3600, 60, 86400),
        hold_music=hold_music,
        media_capacity=_int(env, "UNIDESK_MEDIA_CAPACITY", 200, 1, 100_000),
        sip_host=env.get("UNIDESK_SIP_HOST") or "127.0.0.1",
        sip_port=sip_port,
        media_link_host=env.get("UNIDESK_MEDIA_LINK_HOST") or None,
        media_link_port=_int(env, "UNIDESK_MEDIA_LINK_PORT", 0, 0, 65535),
        recordings_dir=env.get("UNIDESK_RECORDINGS_DIR") or "recordings",
        retention_sweep_seconds=_float(env, "UNIDESK_RETENTION_SWEEP_SECONDS", 3600.0, 0.1, 7 * 86400.0),
        sip_invite_rate=_float(env, "UNIDESK_SIP_INVITE_RATE", 50.0, 0.1, 100_000.0),
        sip_invite_burst=_int(env, "UNIDESK_SIP_INVITE_BURST", 100, 1, 100_000),
        sip_max_pending=_int(env, "UNIDESK_SIP_MAX_PENDING", 64, 1, 100_000),
        sip_lanes=sip_lanes,
        sip_lane_port=lane_port,
        media_switch_ms=_int(env, "UNIDESK_MEDIA_SWITCH_MS", 20, 1, 200),
        host=host,
        port=port,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        secret=secret,
        access_ttl=_int(env, "UNIDESK_ACCESS_TTL", 900, 10, 86400),
        refresh_ttl=_int(env, "UNIDESK_REFRESH_TTL", 7 * 24 * 3600, 60, 90 * 86400),
        heartbeat_seconds=_float(env, "UNIDESK_HEARTBEAT_SECONDS", 15.0, 0.1, 300.0),
        max_frame_bytes=_int(env, "UNIDESK_MAX_FRAME_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        replay_events=_int(env, "UNIDESK_REPLAY_EVENTS", 10_000, 10, 10_000_000),
        log_json=log_json,
        log_level=level,
    )


def _kept_secret(path: Path) -> str:
    """The embedded default's signing key: made once, kept beside the database."""
    if path.exists():
        value = path.read_text().strip()
        if len(value) >= 32:
            return value
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


__all__ = ["ConfigError", "Settings", "load_settings", "replace"]
