"""Calls between services prove which service sends them (keelson_services.callers), and the
operator renders each side of it (render/callers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.render import RenderContext, callers
from keelson.render.configmap import config_data
from keelson.render.deployment import render_deployment
from keelson_services.app import create_app
from keelson_services.callers import CallerPolicy, CallerRefusedError, CallerVerifier, CallTokens
from keelson_services.deps import CurrentIdentity
from keelson_services.settings import Settings
from tests.fakes.token_issuer import FakeIssuer

AUDIENCE = "keelson.dev/shop/shop/orders"
GATEWAY = "system:serviceaccount:shop:gateway"


def _policy(issuer: FakeIssuer, **overrides: object) -> CallerPolicy:
    ti = issuer.token_issuer()
    values: dict[str, object] = {
        "audience": AUDIENCE,
        "allowed": {GATEWAY: "gateway"},
        "issuer": ti.issuer,
        "jwks": json.loads(ti.jwks),
    }
    return CallerPolicy(**(values | overrides))  # type: ignore[arg-type]


def _refusal(verifier: CallerVerifier, authorization: str | None) -> str:
    with pytest.raises(CallerRefusedError) as caught:
        verifier.verify(authorization)
    return caught.value.reason


def test_a_declared_caller_with_a_token_for_this_service_is_accepted() -> None:
    issuer = FakeIssuer()
    verifier = CallerVerifier(_policy(issuer))
    assert verifier.verify("Bearer " + issuer.mint("shop", "gateway", AUDIENCE)) == "gateway"


def test_every_other_token_is_refused_with_its_reason() -> None:
    issuer = FakeIssuer()
    verifier = CallerVerifier(_policy(issuer), clock=lambda: 1_000_000.0)
    now = 1_000_000.0
    assert "no service token" in _refusal(verifier, None)
    assert "no service token" in _refusal(verifier, "Basic abc")
    assert "malformed" in _refusal(verifier, "Bearer not-a-jwt")
    # Declared in `calls`? Only the gateway is: payments may not call orders.
    assert "not a declared caller" in _refusal(verifier, "Bearer " + issuer.mint("shop", "payments", AUDIENCE, now=now))
    # A token for another callee cannot be replayed here.
    other = issuer.mint("shop", "gateway", "keelson.dev/shop/shop/users", now=now)
    assert "another service" in _refusal(verifier, "Bearer " + other)
    # Same name, another namespace: another ServiceAccount.
    assert "not a declared caller" in _refusal(verifier, "Bearer " + issuer.mint("evil", "gateway", AUDIENCE, now=now))
    expired = issuer.mint("shop", "gateway", AUDIENCE, seconds=60, now=now - 3600)
    assert "expired" in _refusal(verifier, "Bearer " + expired)
    # Signed by someone else's key, or by another issuer.
    from cryptography.hazmat.primitives.asymmetric import rsa

    forger = FakeIssuer(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert "does not verify" in _refusal(verifier, "Bearer " + forger.mint("shop", "gateway", AUDIENCE, now=now))
    elsewhere = FakeIssuer(issuer="https://elsewhere.example")
    assert "another issuer" in _refusal(verifier, "Bearer " + elsewhere.mint("shop", "gateway", AUDIENCE, now=now))
    # An unsigned token ("alg": "none") is never accepted.
    import jwt

    unsigned = jwt.encode({"sub": GATEWAY, "aud": AUDIENCE, "exp": now + 60}, None, algorithm="none")
    assert "algorithm" in _refusal(verifier, "Bearer " + unsigned)


def test_without_the_issuers_keys_every_call_is_refused() -> None:
    # Fail closed: a platform whose operator could not read the issuer accepts no internal call.
    issuer = FakeIssuer()
    verifier = CallerVerifier(_policy(issuer, jwks=None))
    assert "no keys" in _refusal(verifier, "Bearer " + issuer.mint("shop", "gateway", AUDIENCE))


def test_call_tokens_are_read_per_downstream_and_reread_when_rotated(tmp_path: Path) -> None:
    tokens = CallTokens(tmp_path)
    assert tokens.authorization("payments") is None
    (tmp_path / "payments").write_text("first\n")
    assert tokens.authorization("payments") == "Bearer first"
    import os

    (tmp_path / "payments").write_text("second")
    stat = (tmp_path / "payments").stat()
    os.utime(tmp_path / "payments", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert tokens.authorization("payments") == "Bearer second"
    assert CallTokens(None).authorization("payments") is None


def _settings(policy: CallerPolicy | None) -> Settings:
    return Settings(
        service="orders", domain="shop", kafka_bootstrap=None, publishes=(), subscribes=(),
        retry_backoff_seconds=(1,), retry_max=0, callers=policy,
    )  # fmt: skip


async def test_a_service_believes_identity_headers_only_from_a_verified_caller() -> None:
    issuer = FakeIssuer()
    router = APIRouter()

    @router.get("/api/v1/me")
    async def me(caller: CurrentIdentity) -> dict[str, str]:
        return {"user": caller.user_id}

    app = create_app(_settings(_policy(issuer)), title="t", routers=[router], configure_logs=False)
    forged = {"X-User-Id": "someone-else", "X-User-Roles": "admin"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
        refused = await http.get("/api/v1/me", headers=forged)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthenticated_caller"
        token = {"Authorization": "Bearer " + issuer.mint("shop", "gateway", AUDIENCE)}
        accepted = await http.get("/api/v1/me", headers=forged | token)
        assert accepted.status_code == 200 and accepted.json() == {"user": "someone-else"}
        # The kubelet's probes and Prometheus carry no token.
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200


def _ctx(issuer: FakeIssuer | None = None) -> RenderContext:
    spec = MicroservicePlatformSpec.model_validate(
        {
            "domain": "shop",
            "gateway": {"service": "gateway"},
            "services": [
                {"name": "gateway", "reference": "gateway"},
                {"name": "orders", "reference": "orders", "calls": ["payments"], "expose": {"path": "/orders"}},
                {"name": "payments", "reference": "payments"},
                {"name": "audit", "image": "example.com/audit:1"},
            ],
        }
    )
    return RenderContext("shop", "shop", spec, token_issuer=issuer.token_issuer() if issuer else None)


def test_each_service_gets_tokens_for_its_callees_and_accepts_only_its_callers() -> None:
    ctx = _ctx(FakeIssuer())
    orders, payments, gateway, audit = (ctx.service(n) for n in ("orders", "payments", "gateway", "audit"))
    assert callers.callees(ctx, gateway) == ["orders"]  # the exposed ones
    assert callers.callees(ctx, orders) == ["payments"]
    assert callers.callers(ctx, orders) == ["gateway"]
    assert callers.callers(ctx, payments) == ["orders"]
    assert callers.callers(ctx, audit) == []
    env = config_data(ctx, payments)
    assert json.loads(env["KEELSON_ALLOWED_CALLERS"]) == {"system:serviceaccount:shop:orders": "orders"}
    assert env["KEELSON_CALLER_AUDIENCE"] == "keelson.dev/shop/shop/payments"
    assert json.loads(env["KEELSON_CALLER_JWKS"])["keys"] and env["KEELSON_CALLER_ISSUER"]
    assert "KEELSON_CALL_TOKENS_DIR" not in env  # payments calls nobody
    assert json.loads(config_data(ctx, audit)["KEELSON_ALLOWED_CALLERS"]) == {}  # nobody may call it

    pod = render_deployment(ctx, orders)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == callers.TOKENS_VOLUME]
    assert volume["projected"]["sources"] == [
        {
            "serviceAccountToken": {
                "audience": "keelson.dev/shop/shop/payments",
                "expirationSeconds": 3600,
                "path": "payments",
            }
        }
    ]
    assert callers.token_mount() in pod["containers"][0]["volumeMounts"]
    assert config_data(ctx, orders)["KEELSON_CALL_TOKENS_DIR"] == callers.TOKENS_DIR
    payments_pod = render_deployment(ctx, payments)["spec"]["template"]["spec"]
    assert [v["name"] for v in payments_pod["volumes"]] == ["tmp"]


def test_a_rotated_issuer_key_rolls_the_pods() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    before = render_deployment(_ctx(FakeIssuer()), _ctx().service("orders"))
    rotated = FakeIssuer(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    after = render_deployment(_ctx(rotated), _ctx().service("orders"))
    checksum = "keelson.dev/config-checksum"
    annotations = (
        before["spec"]["template"]["metadata"]["annotations"],
        after["spec"]["template"]["metadata"]["annotations"],
    )
    assert annotations[0][checksum] != annotations[1][checksum]


def test_the_issuer_documents_become_a_token_issuer() -> None:
    from keelson.controller.issuer import token_issuer

    jwks = FakeIssuer().jwks()
    found = token_issuer({"issuer": "https://kubernetes.default.svc"}, jwks)
    assert found is not None and found.issuer == "https://kubernetes.default.svc"
    assert json.loads(found.jwks) == {"keys": jwks["keys"]}
    assert token_issuer({}, jwks) is None
    assert token_issuer({"issuer": "x"}, {"keys": []}) is None
