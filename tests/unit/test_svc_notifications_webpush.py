"""Web Push and SMS against their local stand-ins, over real HTTP: RFC 8291 encryption checked
both ways against an independent implementation (http_ece), VAPID claims and signature, key
validation, a gone subscription forgetting its device, and the SMS provider's API with the
platform's retries."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keelson.devstack.smssink import SmsProvider
from keelson_services.http.client import ServiceClient
from keelson_services.http.retry import RetryPolicy
from keelson_services.services.notifications.config import SmsConfig
from keelson_services.services.notifications.rendering import Rendered
from keelson_services.services.notifications.senders import (
    Device,
    Outgoing,
    ProviderRefusedError,
    SmsSender,
    WebPushSender,
)
from keelson_services.services.notifications.webpush import (
    MAX_PAYLOAD,
    SubscriptionKeyError,
    Vapid,
    b64url,
    client_keys,
    encrypt,
)
from tests.fakes.push_service import PushRefusedError, PushService, decrypt, vapid_private_key_pem, verify_vapid


def client_key() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key, public, b"0123456789abcdef"


def test_our_encryption_decrypts_with_the_push_service_and_with_http_ece() -> None:
    key, public, auth = client_key()
    body = encrypt(b'{"title": "Order paid"}', p256dh=public, auth=auth)
    assert decrypt(body, key=key, auth=auth) == b'{"title": "Order paid"}'
    assert http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm") == b'{"title": "Order paid"}'
    # A fresh salt and ephemeral key each time: the same message never looks the same twice.
    assert encrypt(b"x", p256dh=public, auth=auth) != encrypt(b"x", p256dh=public, auth=auth)
    with pytest.raises(PushRefusedError, match="does not decrypt"):
        decrypt(body, key=key, auth=b"fedcba9876543210")  # another auth secret
    with pytest.raises(ValueError, match="at most"):
        encrypt(b"x" * (MAX_PAYLOAD + 1), p256dh=public, auth=auth)


def test_the_push_service_decrypts_what_http_ece_encrypts() -> None:
    key, public, auth = client_key()
    sender = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(b"hello", private_key=sender, dh=public, auth_secret=auth, version="aes128gcm")
    assert decrypt(body, key=key, auth=auth) == b"hello"


def test_vapid_claims_and_signature() -> None:
    vapid = Vapid.from_pem(vapid_private_key_pem(), subject="mailto:ops@shop.example")
    header = vapid.authorization("https://push.example.net/wpush/v2/abc?x=1", now=time.time())
    claims, key = verify_vapid(header, origin="https://push.example.net")
    assert claims["aud"] == "https://push.example.net" and claims["sub"] == "mailto:ops@shop.example"
    assert 0 < claims["exp"] - time.time() <= 24 * 3600 and key == vapid.public_key
    with pytest.raises(PushRefusedError, match="bad vapid token"):
        verify_vapid(header, origin="https://other.example.net")  # signed for another push service
    other = Vapid.from_pem(vapid_private_key_pem(), subject="mailto:ops@shop.example")
    forged = header.split(", k=")[0] + f", k={other.public_key}"  # the token with another key
    with pytest.raises(PushRefusedError, match="bad vapid token"):
        verify_vapid(forged, origin="https://push.example.net")
    expired = vapid.authorization("https://push.example.net/x", now=time.time() - 13 * 3600)
    with pytest.raises(PushRefusedError, match="bad vapid token"):
        verify_vapid(expired, origin="https://push.example.net")


def test_subscription_keys_are_checked() -> None:
    _, public, auth = client_key()
    assert client_keys(b64url(public), b64url(auth)) == (public, auth)
    bad = [
        (b64url(public), b64url(b"short")),
        (b64url(public[:33]), b64url(auth)),
        (b64url(b"\x04" + b"\x01" * 64), b64url(auth)),  # not on the curve
        ("not base64!", b64url(auth)),
    ]
    for p256dh, secret in bad:
        with pytest.raises(SubscriptionKeyError):
            client_keys(p256dh, secret)


class MemoryDevices:
    def __init__(self, devices: Sequence[Device]) -> None:
        self.list = list(devices)

    async def devices(self, user_id: str) -> Sequence[Device]:
        return list(self.list)

    async def forget_device(self, device_id: uuid.UUID) -> None:
        self.list = [d for d in self.list if d.id != device_id]


@pytest.fixture
async def client() -> AsyncIterator[ServiceClient]:
    async def no_wait(_: float) -> None:
        return None

    async with ServiceClient(
        service="notifications", base_urls={}, retry=RetryPolicy((1, 2, 4, 8), 3), sleep=no_wait
    ) as found:
        yield found


def outgoing(recipient: str, body: str = "Your order 3f1c2b9a is paid.") -> Outgoing:
    return Outgoing(uuid.uuid4(), recipient, Rendered("push", "order_paid", "Order paid", body))


async def test_a_push_reaches_every_device_and_a_gone_one_is_forgotten(client: ServiceClient) -> None:
    with PushService() as service:
        phone, laptop = service.subscribe(), service.subscribe()
        devices = MemoryDevices(
            [Device(uuid.uuid4(), s.endpoint, *client_keys(**s.json()["keys"])) for s in (phone, laptop)]
        )
        vapid = Vapid.from_pem(vapid_private_key_pem(), subject="mailto:ops@shop.example")
        sender = WebPushSender(vapid, client, devices)
        message = outgoing("u-1")
        assert (await sender.send(message)).startswith(service.url + "/message/")
        for sub in (phone, laptop):
            (got,) = service.for_subscription(sub)
            assert got.json() == {
                "title": "Order paid", "body": message.rendered.body, "notification_id": str(message.notification_id),
            }  # fmt: skip
            assert got.vapid_key == vapid.public_key and got.headers["ttl"] == "86400"
        laptop.gone = 410
        await sender.send(outgoing("u-1"))
        assert [d.endpoint for d in devices.list] == [phone.endpoint]
        phone.gone = 404
        with pytest.raises(ProviderRefusedError, match="subscription gone"):
            await sender.send(outgoing("u-1"))
        assert devices.list == [] and service.refused == []


async def test_a_push_service_that_is_overloaded_is_retried(client: ServiceClient) -> None:
    with PushService() as service:
        sub = service.subscribe()
        devices = MemoryDevices([Device(uuid.uuid4(), sub.endpoint, *client_keys(**sub.json()["keys"]))])
        sender = WebPushSender(Vapid.from_pem(vapid_private_key_pem(), subject="mailto:a@b.c"), client, devices)
        service.fail_next(2, 503)
        await sender.send(outgoing("u-1"))
        assert len(service.for_subscription(sub)) == 1
        service.fail_next(1, 429)  # "slow down": not retried here, the event is (its subscription's schedule)
        with pytest.raises(ProviderRefusedError, match="429"):
            await sender.send(outgoing("u-1"))


async def test_sms_goes_through_the_providers_api_with_the_platforms_retries(client: ServiceClient) -> None:
    with SmsProvider() as provider:
        env = provider.env()
        config = SmsConfig(env["KEELSON_SMS_BASE_URL"], env["KEELSON_SMS_ACCOUNT"], env["KEELSON_SMS_TOKEN"], "+1500")
        sender = SmsSender(config, client)
        text = "shop: your code is 123456"
        sid = await sender.send_text("+4915112345678", text, key="k-1")
        assert [(m.sid, m.to, m.body) for m in provider.messages] == [(sid, "+4915112345678", text)]
        provider.fail_next(2, 503)
        assert await sender.send_text("+4915112345678", "again", key="k-2")
        assert provider.requests == 4 and len(provider.messages) == 2  # two 503s, then taken
        # A repeat of a send the provider took (a retry after a lost answer) is the same message.
        assert await sender.send_text("+4915112345678", "again", key="k-2") == provider.messages[1].sid
        provider.fail_next(1, 429)
        with pytest.raises(ProviderRefusedError, match="429"):
            await sender.send_text("+4915112345678", "x", key="k-3")
        with pytest.raises(ProviderRefusedError, match=r"400 \(provider code 21211\)"):
            await sender.send_text("12345", "x", key="k-4")
        wrong = SmsSender(SmsConfig(config.base_url, config.account, "wrong-token", "+1500"), client)
        with pytest.raises(ProviderRefusedError) as refused:
            await wrong.send_text("+4915112345678", "x", key="k-5")
        assert "401" in str(refused.value) and "wrong-token" not in str(refused.value)
        assert json.dumps([m.body for m in provider.messages]).count("x") == 0
