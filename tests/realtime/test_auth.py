import base64
import json
import time

import jwt
import pytest

from realtime.auth import LoginThrottle, Principal, TokenError, TokenService, hash_password, verify_password

KEY = "k" * 40
P = Principal(1, 2, "demo", "agent1", frozenset({"agent"}), 0, "access")


def svc() -> TokenService:
    return TokenService(KEY, access_ttl=60, refresh_ttl=600)


def test_access_token_round_trips_with_roles_and_tenant():
    got = svc().verify(svc().issue(P, "access", 60))
    assert (got.user_id, got.tenant_id, got.username, got.roles) == (1, 2, "agent1", frozenset({"agent"}))


def test_token_signed_with_another_key_is_refused():
    forged = TokenService("z" * 40, 60, 600).issue(P, "access", 60)
    with pytest.raises(TokenError, match="signature"):
        svc().verify(forged)


def test_alg_none_is_refused():
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(
        json.dumps({"sub": "1", "tid": 2, "typ": "access", "iss": "unidesk", "iat": 1, "exp": 2**40}).encode()
    ).rstrip(b"=")
    with pytest.raises(TokenError, match="algorithm 'none'"):
        svc().verify((header + b"." + body + b".").decode())


def test_other_algorithm_is_refused_even_with_the_right_key():
    t = jwt.encode({"sub": "1", "tid": 2, "typ": "access", "iss": "unidesk", "iat": 1, "exp": 2**40}, KEY, "HS512")
    with pytest.raises(TokenError, match="HS512"):
        svc().verify(t)


def test_expired_token_is_refused():
    with pytest.raises(TokenError, match="expired"):
        svc().verify(svc().issue(P, "access", 10, now=time.time() - 100))


def test_refresh_token_cannot_be_used_as_access_and_vice_versa():
    s = svc()
    with pytest.raises(TokenError, match="refresh token cannot be used"):
        s.verify(s.issue(P, "refresh", 60), "access")
    with pytest.raises(TokenError, match="access token cannot be used"):
        s.verify(s.issue(P, "access", 60), "refresh")


def test_garbage_is_a_malformed_token():
    with pytest.raises(TokenError, match="malformed"):
        svc().verify("not-a-token")


def test_passwords_are_hashed_not_stored():
    h = hash_password("demo")
    assert "demo" not in h and h.startswith("$argon2id$")
    assert verify_password(h, "demo") and not verify_password(h, "Demo")
    assert not verify_password(None, "demo")


async def test_throttle_slows_down_after_free_attempts_and_forgets_on_success():
    t = LoginThrottle(free=3, free_addr=4, cap=60)
    keys = ["user:demo:a", "addr:1.2.3.4"]
    for i in range(3):
        assert await t.retry_after(keys, 100.0 + i) == 0
        await t.failed(keys, 100.0 + i)
    wait = await t.retry_after(keys, 102.0)
    assert wait == pytest.approx(2.0)
    await t.failed(keys, 103.0)
    assert await t.retry_after(keys, 103.0) == pytest.approx(4.0)
    await t.succeeded(keys)
    # The user's counter is cleared, the address's (4 failures, its own threshold) is not.
    assert await t.retry_after(["user:demo:a"], 103.0) == 0
    assert await t.retry_after(["addr:1.2.3.4"], 103.0) == pytest.approx(2.0)
