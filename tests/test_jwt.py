"""Token signing and verification: forged, expired, mistyped and incomplete tokens are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings

import jwt as pyjwt
import pytest
from conftest import TEST_SECRET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def count_decodes(monkeypatch) -> list[str]:
    """Counts PyJWT's decodes from now on: each call appends the token."""
    decodes: list[str] = []
    real_decode = pyjwt.decode
    monkeypatch.setattr(pyjwt, "decode",
                        lambda token, *a, **k: decodes.append(token) or real_decode(token, *a, **k))
    return decodes


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
        "issued-in-the-future": sign({**claims, "iat": now + 1000, "exp": now + 2000}),
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
    decodes = count_decodes(monkeypatch)
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


# -- the fast path in front of PyJWT (TokenIssuer._decode_own) -----------------------------


def test_tokens_this_issuer_signed_verify_without_pyjwt(issuer, monkeypatch):
    """Access and refresh tokens as issued verify on the fast path, PyJWT's decode never
    called, with the very claims PyJWT reads from them."""
    tokens = [(issuer.issue_access(user, role, ver, f"s-{user}"), "access")
              for user, role, ver in ((1, "user", 0), (2, "admin", 7), (10**12, "user", 3))]
    tokens += [(issuer.issue_refresh(user, 1, f"s-{user}")[0], "refresh") for user in (1, 2)]
    expected = [issuer._decode(token, typ) for token, typ in tokens]
    decodes = count_decodes(monkeypatch)
    assert [issuer.verify(token, typ) for token, typ in tokens] == expected
    assert decodes == []


def test_every_refusal_is_pyjwts(issuer, monkeypatch):
    """The fast path refuses nothing: each forged or misused token goes to PyJWT once, which
    refuses it (and names why), and a control token signed by hand verifies."""
    genuine = issuer.issue_access(1, "user", 1, "s-1")
    refresh, _ = issuer.issue_refresh(1, 1, "s-1")
    forged = forgeries(genuine, refresh)
    decodes = count_decodes(monkeypatch)
    for token in forged.values():
        with pytest.raises(TokenError):
            issuer.verify(token, "access")
    assert decodes == list(forged.values())
    assert issuer.verify(sign(valid_claims()), "access").user_id == 1


def hand_signed(body: bytes, key: str = TEST_SECRET, header: dict | None = None) -> str:
    """A token with any payload bytes, signed over its first two segments like PyJWT."""
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"},
                          separators=(",", ":")).encode())
    signing = f"{head}.{b64(body)}"
    mac = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(mac)}"


NOW = int(time.time())
CLAIM_VALUES = st.one_of(
    st.sampled_from([NOW, NOW - 1000, NOW + 1000, NOW + 600, str(NOW), float(NOW + 600), ISS,
                     "someone-else", [AUD], [AUD, "x"], "1", "0", " 2", "admin", "access",
                     "refresh", "s-1", "", 0, 1, True, None]),
    st.integers(-2**63, 2**63), st.text(max_size=6), st.lists(st.text(max_size=3), max_size=2))
CLAIM_NAMES = [*REQUIRED, "nbf", "jti", "role", "extra"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typ=st.sampled_from(["access", "refresh"]),
       changes=st.dictionaries(st.sampled_from(CLAIM_NAMES), CLAIM_VALUES, max_size=3),
       removed=st.sets(st.sampled_from(CLAIM_NAMES), max_size=2),
       how=st.sampled_from(["pyjwt", "kid-header", "hs512", "other-key", "by-hand",
                            "by-hand-spaced", "by-hand-hs512-header", "padded", "bit-flip",
                            "bytes"]),
       junk=st.binary(max_size=40))
def test_the_fast_path_accepts_only_what_pyjwt_accepts(typ, changes, removed, how, junk):
    """On generated tokens (claims of every type, present or not; other headers, keys and
    encodings; any payload bytes signed with the real key), whatever the fast path accepts
    PyJWT's path accepts too, with equal claims."""
    issuer = TokenIssuer(TEST_SECRET, ISS, AUD, access_ttl=900, refresh_ttl=3600)
    claims = {k: v for k, v in {**valid_claims(typ), **changes}.items() if k not in removed}
    compact = json.dumps(claims, separators=(",", ":")).encode()
    token = hand_signed(compact)  # "by-hand", and what PyJWT will not sign (a non-string iss)
    if how == "by-hand-spaced":
        token = hand_signed(json.dumps(claims, indent=1).encode())
    elif how == "bytes":
        token = hand_signed(junk)
    elif how == "by-hand-hs512-header":  # an HS256 signature under a header naming HS512
        token = hand_signed(compact, header={"alg": "HS512", "typ": "JWT"})
    elif how != "by-hand" and isinstance(claims.get("iss", ""), str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyjwt.warnings.InsecureKeyLengthWarning)
            token = pyjwt.encode(
                claims, OTHER_SECRET if how == "other-key" else TEST_SECRET,
                algorithm="HS512" if how == "hs512" else "HS256",
                headers={"kid": "k-1"} if how == "kid-header" else None)
        head, body, signature = token.split(".")
        if how == "padded":
            token = f"{head}.{body}=.{signature}"
        elif how == "bit-flip":
            token = f"{head}.{body}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    own = issuer._decode_own(token, typ)
    try:
        reference = issuer._decode(token, typ)
    except TokenError:
        reference = None
    if own is not None:
        assert own == reference
