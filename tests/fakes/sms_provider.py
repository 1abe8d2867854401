"""A local SMS provider for tests, speaking Twilio's Messages API: `POST /2010-04-01/Accounts/
{AccountSid}/Messages.json`, form-encoded `To`, `From`, `Body`, HTTP basic auth (account SID,
auth token), 201 with the message as JSON. It records every message it accepts, refuses bad
credentials (401) and numbers that are not E.164 (400, Twilio's code 21211), answers a repeated
`I-Twilio-Idempotency-Token` with the message it already took, and can be told to fail the next
requests with a status (503, 429)."""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from tests.fakes.http_standin import Answer, HttpStandIn, Request

E164 = re.compile(r"\+[1-9]\d{6,14}")


@dataclass(frozen=True)
class Sms:
    sid: str
    to: str
    sender: str
    body: str


class SmsProvider(HttpStandIn):
    def __init__(self, account: str = "AC" + "0" * 32, token: str = "test-sms-token") -> None:
        super().__init__()
        self.account = account
        self.token = token
        self.messages: list[Sms] = []
        self.requests = 0
        self._by_key: dict[str, Sms] = {}
        self._failures: list[int] = []

    def env(self) -> dict[str, str]:
        """The notifications service's settings for this provider."""
        return {
            "KEELSON_SMS_BASE_URL": self.url,
            "KEELSON_SMS_ACCOUNT": self.account,
            "KEELSON_SMS_TOKEN": self.token,
            "KEELSON_SMS_FROM": "+15005550006",
        }

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self._failures.extend([status] * count)

    def to(self, number: str) -> list[Sms]:
        with self.lock:
            return [m for m in self.messages if m.to == number]

    def answer(self, request: Request) -> Answer:
        with self.lock:
            self.requests += 1
            if self._failures:
                status = self._failures.pop(0)
                return _json(status, {"code": 20429 if status == 429 else 20500, "message": "try again later"})
        if request.method != "POST" or request.path != f"/2010-04-01/Accounts/{self.account}/Messages.json":
            return _json(404, {"code": 20404, "message": "not found"})
        expected = "Basic " + base64.b64encode(f"{self.account}:{self.token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return _json(401, {"code": 20003, "message": "Authenticate"})
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _json(415, {"code": 20415, "message": "form-encoded body expected"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        if not E164.fullmatch(form.get("To", "")):
            return _json(400, {"code": 21211, "message": "The 'To' number is not a valid phone number."})
        if not form.get("Body"):
            return _json(400, {"code": 21602, "message": "Message body is required."})
        key = request.headers.get("i-twilio-idempotency-token")
        with self.lock:
            sms = self._by_key.get(key) if key else None
            if sms is None:
                sms = Sms("SM" + secrets.token_hex(16), form["To"], form.get("From", ""), form["Body"])
                self.messages.append(sms)
                if key:
                    self._by_key[key] = sms
        body = {"sid": sms.sid, "to": sms.to, "from": sms.sender, "body": sms.body, "status": "queued"}
        return _json(201, body)


def _json(status: int, body: dict[str, object]) -> Answer:
    return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
