"""Token signing and verification: forged, expired, mistyped and incomplete tokens are refused."""

from __future__ import annotations

import base64
import json
import time
import warnings

import jwt as pyjwt
import pytest
from conftest import TEST_SECRET

from auth.jwt import REQUIRED, TokenError, TokenIssuer

ISS = AUD = "events-server"
OTHER_SECRET = "another-secret-" + "y" * 40


@pytest.fixture
def issuer() -> TokenIssuer:
    """An issuer with the test secret, as the app under test uses it."""
    return TokenIssuer(TEST_SECRET, ISS, AUD, access_ttl=900, refresh_ttl=3600)


def b64(data: bytes) -> str:
    """Base64url without padding, as JWT segments are encoded."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    """Decodes one base64url JWT segment."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def claims_of(token: str) -> dict:
    """Returns a token's payload without verifying it."""
    return json.loads(unb64(token.split(".")[1]))


def sign(payload: dict, key: str = TEST_SECRET, alg: str = "HS256") -> str:
    """Signs payload with PyJWT (the forger's own copy)."""
    with warnings.catch_warnings():  # HS512 with the real, 52-byte key warns; that is the point
        warnings.simplefilter("ignore", pyjwt.warnings.InsecureKeyLengthWarning)
        return pyjwt.encode(payload, key, algorithm=alg)


def unsigned(payload: dict) -> str:
    """Builds an `alg: none` token by hand: header.payload. with an empty signature."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def edit_payload(token: str, **changes: object) -> str:
    """Rewrites claims in a signed token but keeps the original header and signature."""
    header, _, signature = token.split(".")
    payload = {**claims_of(token), **changes}
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


def valid_claims(typ: str = "access", **changes: object) -> dict:
    """A complete, currently valid set of claims."""
    now = int(time.time())
    base = {"iss": ISS, "aud": AUD, "sub": "1", "iat": now, "exp": now + 600, "typ": typ,
            "ver": 1, "sid": "s-1", "role": "user"}
    if typ == "refresh":
        base["jti"] = "j-1"
        del base["role"]
    return {**base, **changes}


def forgeries(genuine_access: str, genuine_refresh: str) -> dict[str, str]:
    """Every forged or misused variant of a genuine access token, by name."""
    claims = claims_of(genuine_access)
    now = int(time.time())
    result = {
        "alg-none": unsigned(claims),
        "alg-none-upper": unsigned(claims).replace(
            b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
            b64(json.dumps({"alg": "None", "typ": "JWT"}).encode())),
        "wrong-key": sign(claims, OTHER_SECRET),
        "hs512-same-key": sign(claims, TEST_SECRET, "HS512"),
        "edited-role": edit_payload(genuine_access, role="superadmin"),
        "edited-sub": edit_payload(genuine_access, sub=str(int(claims["sub"]) + 1)),
        "edited-exp": edit_payload(genuine_access, exp=claims["exp"] + 86400),
        "stripped-signature": genuine_access.rsplit(".", 1)[0] + ".",
        "expired": sign({**claims, "iat": now - 1000, "exp": now - 10}),
        "refresh-as-access": genuine_refresh,
        "wrong-typ": sign({**claims, "typ": "id"}),
        "wrong-iss": sign({**claims, "iss": "someone-else"}),
        "wrong-aud": sign({**claims, "aud": "another-service"}),
        "garbage": "not-a-token",
        "two-segments": "abc.def",
    }
    for claim in REQUIRED:
        result[f"missing-{claim}"] = sign({k: v for k, v in claims.items() if k != claim})
    return result


FORGERY_NAMES = sorted(forgeries(
    sign(valid_claims()), sign(valid_claims("refresh"))).keys())


# -- unit: TokenIssuer --------------------------------------------------------------------


def test_issued_access_token_verifies(issuer):
    """An access token verifies as access and carries user id, role, version and session."""
    token = issuer.issue_access(7, "admin", 3, "sess")
    claims = issuer.verify(token, "access")
    assert (claims.user_id, claims.role, claims.ver, claims.sid) == (7, "admin", 3, "sess")
    payload = claims_of(token)
    assert payload["exp"] - payload["iat"] == 900
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
    for claim in REQUIRED:
        assert claim in payload


def test_issued_refresh_tokens_are_unique(issuer):
    """Each refresh token has a fresh jti, so two issued in the same second still differ."""
    first, jti1 = issuer.issue_refresh(7, 1, "sess")
    second, jti2 = issuer.issue_refresh(7, 1, "sess")
    assert first != second and jti1 != jti2
    assert issuer.verify(first, "refresh").jti == jti1


def test_control_token_signed_by_hand_verifies(issuer):
    """The forger's helper produces accepted tokens when nothing is wrong (so refusals are real)."""
    assert issuer.verify(sign(valid_claims()), "access").user_id == 1
    assert issuer.verify(sign(valid_claims("refresh")), "refresh").jti == "j-1"


@pytest.mark.parametrize("name", FORGERY_NAMES)
def test_forged_access_token_is_refused(issuer, name):
    """Each forged, expired, mistyped or incomplete token raises TokenError when verified."""
    genuine = issuer.issue_access(1, "user", 1, "s-1")
    refresh, _ = issuer.issue_refresh(1, 1, "s-1")
    assert issuer.verify(genuine, "access")
    with pytest.raises(TokenError):
        issuer.verify(forgeries(genuine, refresh)[name], "access")


def test_access_token_used_as_refresh_is_refused(issuer):
    """An access token is refused where a refresh token is expected."""
    with pytest.raises(TokenError, match="refresh"):
        issuer.verify(issuer.issue_access(1, "user", 1, "s"), "refresh")


def test_refresh_token_used_as_access_is_refused(issuer):
    """A refresh token is refused where an access token is expected."""
    token, _ = issuer.issue_refresh(1, 1, "s")
    with pytest.raises(TokenError, match="access"):
        issuer.verify(token, "access")


def test_expired_token_is_flagged_as_expired(issuer):
    """An expired token raises TokenError with expired=True (so sockets can say why they close)."""
    now = int(time.time())
    with pytest.raises(TokenError) as info:
        issuer.verify(sign(valid_claims(iat=now - 100, exp=now - 1)), "access")
    assert info.value.expired is True


def test_issued_token_expires_after_its_ttl(issuer, monkeypatch):
    """A token issued more than access_ttl seconds ago is refused as expired."""
    real_time = time.time
    monkeypatch.setattr("auth.jwt.time.time", lambda: real_time() - 901)
    token = issuer.issue_access(1, "user", 1, "s")
    monkeypatch.setattr("auth.jwt.time.time", real_time)
    with pytest.raises(TokenError) as info:
        issuer.verify(token, "access")
    assert info.value.expired


def test_non_numeric_subject_is_refused(issuer):
    """A correctly signed token whose sub is not a user id is refused."""
    with pytest.raises(TokenError):
        issuer.verify(sign(valid_claims(sub="admin")), "access")


def test_short_secret_is_refused():
    """The issuer refuses a secret shorter than 32 characters."""
    with pytest.raises(ValueError, match="32"):
        TokenIssuer("too-short", ISS, AUD, 900, 3600)


# -- HTTP: every forgery gets 401 from /api/v1/users/me ------------------------------------


@pytest.mark.gen_test
async def test_forged_tokens_get_401_from_the_api(api):
    """Every forged variant of a live user's token gets 401 from /users/me; the genuine one 200."""
    victim = await api.register()
    await api.register()  # a second user, so an edited sub points at a real account
    status, _, _ = await api.call("GET", "/api/v1/users/me", token=victim["access_token"])
    assert status == 200
    # Control: re-signing the genuine claims with the real key is accepted.
    resigned = sign(claims_of(victim["access_token"]))
    assert (await api.call("GET", "/api/v1/users/me", token=resigned))[0] == 200
    results = {}
    for name, token in forgeries(victim["access_token"], victim["refresh_token"]).items():
        status, parsed, _ = await api.call("GET", "/api/v1/users/me", token=token)
        results[name] = (status, parsed["success"], parsed["error"]["code"])
    assert results == {name: (401, False, "unauthorized") for name in results}
    assert set(results) == set(FORGERY_NAMES)


@pytest.mark.gen_test
async def test_edited_role_claim_grants_no_admin_access(api):
    """A user who edits their token's role to superadmin still cannot list users (401)."""
    user = await api.register()
    forged = edit_payload(user["access_token"], role="superadmin")
    status, parsed, _ = await api.call("GET", "/api/v1/users", token=forged)
    assert status == 401 and parsed["success"] is False


@pytest.mark.gen_test
async def test_role_claim_is_not_trusted_for_authorisation(api):
    """Even a correctly signed token claiming admin is judged by the stored role (403)."""
    user = await api.register()
    elevated = sign({**claims_of(user["access_token"]), "role": "admin"})
    status, parsed, _ = await api.call("GET", "/api/v1/users", token=elevated)
    assert status == 403 and parsed["error"]["code"] == "forbidden"


@pytest.mark.gen_test
async def test_refresh_token_used_as_bearer_is_refused(api):
    """A refresh token sent as the bearer token of an API call gets 401."""
    user = await api.register()
    status, parsed, _ = await api.call("GET", "/api/v1/users/me", token=user["refresh_token"])
    assert status == 401 and parsed["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc"])
@pytest.mark.gen_test
async def test_malformed_authorization_header_is_refused(api, header):
    """An Authorization header that is not `Bearer <token>` gets 401."""
    status, parsed, _ = await api.call("GET", "/api/v1/users/me",
                                       headers={"Authorization": header})
    assert status == 401 and parsed["success"] is False


def test_a_verified_access_token_is_not_decoded_again_but_still_expires(issuer, monkeypatch):
    """The second verify of the same access token skips the decode; its expiry still counts."""
    token = issuer.issue_access(1, "user", 0, "sid")
    first = issuer.verify(token, "access")
    decodes = []
    real_decode = pyjwt.decode
    monkeypatch.setattr(pyjwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    assert issuer.verify(token, "access") == first and decodes == []
    real_time = time.time
    monkeypatch.setattr("auth.jwt.time.time", lambda: real_time() + 901)
    with pytest.raises(TokenError) as info:
        issuer.verify(token, "access")
    assert info.value.expired


def test_only_verified_access_tokens_are_remembered(issuer):
    """A forged token, a refresh token and a token of the wrong type are checked every time."""
    token = issuer.issue_access(1, "user", 0, "sid")
    head, body, _ = token.split(".")
    forged = f"{head}.{body}.{b64(b'x' * 32)}"
    for _ in range(2):
        with pytest.raises(TokenError):
            issuer.verify(forged, "access")
    refresh, _ = issuer.issue_refresh(1, 0, "sid")
    issuer.verify(refresh, "refresh")
    for _ in range(2):
        with pytest.raises(TokenError):
            issuer.verify(refresh, "access")
    issuer.verify(token, "access")
    with pytest.raises(TokenError):
        issuer.verify(token, "refresh")  # remembered as access only
