"""Tokens from an identity provider: verified with its JWKS (RS256, ES256 and EdDSA keys made
here, served by a local JWKS server) or a PEM file; mapped to local users; never confused
with the server's own HS256 tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from conftest import next_event, wait_closed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tornado.websocket import websocket_connect

from models.user import User

ISSUER, AUDIENCE = "https://id.example.test/realms/app", "events"


def _jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    key = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {**key, "kid": kid, "use": "sig", "alg": alg}


class Provider:
    """A JWKS served over HTTP from this process, with the private keys to sign tokens."""

    def __init__(self) -> None:
        self.keys = {"rsa1": (rsa.generate_private_key(public_exponent=65537, key_size=2048),
                              "RS256"),
                     "ec1": (ec.generate_private_key(ec.SECP256R1()), "ES256"),
                     "ed1": (ed25519.Ed25519PrivateKey.generate(), "EdDSA")}
        self.published = ["rsa1", "ec1", "ed1"]
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                provider.fetches += 1
                body = json.dumps({"keys": [_jwk(provider.keys[k][0], k, provider.keys[k][1])
                                            for k in provider.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, kid: str = "rsa1", sub: str = "u-1", ttl: int = 300, **claims: Any) -> str:
        private, alg = self.keys[kid]
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl,
                   "name": "Grace Hopper", "email": f"{sub}@example.com", **claims}
        return jwt.encode(payload, private, algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid: str = "rsa1") -> bytes:
        return self.keys[kid][0].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def rotate(self, kid: str, alg: str = "RS256") -> None:
        """Adds a new signing key to the published set."""
        self.keys[kid] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)
        self.published.append(kid)


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """Signs claims with HS256 by hand (PyJWT rightly refuses a PEM key as an HMAC secret)."""
    def part(value: Any) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing = part({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}) + b"." + part(claims)
    signature = hmac.new(secret, signing, hashlib.sha256).digest()
    return (signing + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.server.shutdown()


@pytest.fixture
def settings(settings, provider):
    return replace(settings, jwt_jwks_url=provider.url, jwt_issuer=ISSUER,
                   jwt_audience=AUDIENCE)


async def me(api, token: str) -> tuple[int, Any]:
    status, body, _ = await api.call("GET", "/api/v1/users/me", token=token)
    return status, body


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("kid", ["rsa1", "ec1", "ed1"])
async def test_a_providers_token_opens_the_socket_and_rest_as_a_new_external_user(api, provider,
                                                                                 kid):
    """RS256, ES256 and EdDSA tokens are accepted; the first one creates a local user with
    the name and email claims, who cannot log in with a password."""
    token = provider.token(kid, sub=f"sub-{kid}")
    status, body = await me(api, token)
    assert status == 200, body
    user = body["data"]
    assert (user["name"], user["email"], user["role"]) == ("Grace Hopper",
                                                            f"sub-{kid}@example.com", "user")
    assert user["external"] is True
    conn = await api.ws(token)
    conn.close()
    status, body, _ = await api.call("POST", "/api/v1/auth/login",
                                     {"email": user["email"], "password": "anything-at-all"})
    assert status == 401
    rows = await api.ctx.run(lambda: User.select().where(User.external_id == f"sub-{kid}")
                             .count())
    assert rows == 1


@pytest.mark.gen_test(timeout=30)
async def test_wrong_issuer_audience_expiry_or_signature_is_refused(api, provider):
    """Each check holds: a token from another issuer, for another audience, expired, or
    signed by a key that is not the provider's is 401, on REST and before the upgrade."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60},
                        stranger, algorithm="RS256", headers={"kid": "rsa1"})
    for token in (provider.token(iss="https://evil.test"), provider.token(aud="other"),
                  provider.token(ttl=-120), forged):
        status, _ = await me(api, token)
        assert status == 401, token
        with pytest.raises(Exception) as caught:
            await websocket_connect(f"{api.ws_url}/ws?token={token}")
        assert "401" in str(caught.value)


@pytest.mark.gen_test(timeout=30)
async def test_an_hs256_token_signed_with_the_public_key_is_refused(api, provider):
    """Algorithm confusion: HS256 with the provider's public key as secret never verifies,
    nor does an unsigned token; the server's own HS256 tokens keep working."""
    pem = provider.public_pem()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "attacker", "exp": now + 60,
              "role": "admin"}
    hmac_forged = _hs256(claims, pem)
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (hmac_forged, unsigned):
        status, _ = await me(api, token)
        assert status == 401
    own = await api.register()
    status, body = await me(api, own["access_token"])
    assert status == 200 and "external" not in body["data"]


@pytest.mark.gen_test(timeout=30)
async def test_a_rotated_key_is_fetched_once_and_unknown_kids_do_not_flood_the_provider(api,
                                                                                       provider):
    """A token with a new kid makes the JWKS be fetched again and is accepted; more tokens
    with unknown kids within the minute cause no further fetch."""
    assert (await me(api, provider.token()))[0] == 200
    fetches = provider.fetches
    provider.rotate("rsa2")
    api.ctx.auth.external[0]._fetched_at -= 61  # the last fetch was over a minute ago
    status, body = await me(api, provider.token("rsa2", sub="rotated"))
    assert status == 200, body
    assert provider.fetches == fetches + 1
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x",
                            "exp": int(time.time()) + 60}, private, algorithm="RS256",
                           headers={"kid": f"nope-{n}"})
        assert (await me(api, token))[0] == 401
    assert provider.fetches == fetches + 1


@pytest.mark.gen_test(timeout=30)
async def test_a_later_token_changes_the_role_live_but_never_grants_superadmin(api, provider):
    """The role claim decides the role; a change is announced to the user and re-targets
    the open socket (admin events arrive); superadmin in a claim maps to user."""
    first = provider.token(sub="boss", role="user")
    conn = await api.ws(first)
    promoted = provider.token(sub="boss", role=["offline_access", "admin"])
    status, body = await me(api, promoted)
    assert status == 200 and body["data"]["role"] == "admin"
    event = await next_event(conn)
    assert event["type"] == "user.role.changed"
    assert (event["data"]["old_role"], event["data"]["new_role"]) == ("user", "admin")
    assert event["data"]["changed_by"] is None
    await api.register()  # admins hear user.created: the socket now counts as an admin's
    event = await next_event(conn)
    assert event["type"] == "user.created"
    status, body = await me(api, provider.token(sub="boss", role="superadmin"))
    assert body["data"]["role"] == "user"
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_external_user_cannot_change_a_password_here_and_expiry_closes_the_socket(
        api, provider):
    """The password is the provider's; a socket opened with a token closes when it expires."""
    token = provider.token(sub="short", ttl=2)
    status, body, _ = await api.call("POST", "/api/v1/users/me/password",
                                     {"current_password": "x", "new_password": "y" * 12},
                                     token=token)
    assert status == 403, body
    conn = await api.ws(token)
    code, reason = await wait_closed(conn, timeout=10)
    assert (code, reason) == (1008, "token expired")


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_first_requests_create_one_user(api, provider):
    """Ten sockets opened at once with a new user's token make one local user."""
    token = provider.token(sub="crowd")
    conns = await asyncio.gather(*(api.ws(token) for _ in range(10)))
    rows = await api.ctx.run(lambda: User.select().where(User.external_id == "crowd").count())
    assert rows == 1
    for conn in conns:
        conn.close()


@pytest.fixture
def pem_settings(settings, provider, tmp_path):
    path = tmp_path / "provider.pem"
    path.write_bytes(provider.public_pem("ec1"))
    return replace(settings, jwt_jwks_url="", jwt_public_key_file=str(path))


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_pem_public_key_verifies_tokens_without_a_jwks(database, pem_settings, provider,
                                                              io_loop):
    """--jwt-public-key-file: tokens signed by its private key pass, others do not."""
    from app import make_context

    ctx = make_context(pem_settings)
    principal = await ctx.auth.authenticate(provider.token("ec1", sub="pem-user"))
    assert principal.external_id == "pem-user" and principal.role == "user"
    from services.errors import AuthenticationError
    with pytest.raises(AuthenticationError):
        await ctx.auth.authenticate(provider.token("rsa1", sub="pem-user"))
    assert provider.fetches == 0
    ctx.shutdown_pools()
