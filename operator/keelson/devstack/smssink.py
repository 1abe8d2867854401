"""A local SMS provider speaking Twilio's Messages API, for tests and for `keelson dev run`:
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `From`, `Body`, HTTP
basic auth (account SID, auth token), 201 with the message as JSON. It records every message it
accepts (in memory, and as ``DIR/<timestamp>-<n>.json`` when given a directory), refuses bad
credentials (401) and numbers that are not E.164 (400, Twilio's code 21211), answers a repeated
`I-Twilio-Idempotency-Token` with the message it already took, and can be told to fail the next
requests with a status (503, 429).

Run as ``python -m keelson.devstack.smssink PORT DIR`` (account `ACdev...`, token `dev`: see
`DEV_ENV`)."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from keelson.devstack.standin import Answer, HttpStandIn, Request

E164 = re.compile(r"\+[1-9]\d{6,14}")
DEV_ACCOUNT, DEV_TOKEN, DEV_SENDER = "AC" + "d" * 32, "dev", "+15005550006"
_counter = itertools.count(1)


@dataclass(frozen=True)
class Sms:
    sid: str
    to: str
    sender: str
    body: str


class SmsProvider(HttpStandIn):
    def __init__(
        self, account: str = "AC" + "0" * 32, token: str = "test-sms-token", *, directory: Path | None = None
    ) -> None:
        super().__init__()
        self.account = account
        self.token = token
        self.directory = directory
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
            "KEELSON_SMS_FROM": DEV_SENDER,
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
                if self.directory is not None:
                    _write(self.directory, sms)
        body = {"sid": sms.sid, "to": sms.to, "from": sms.sender, "body": sms.body, "status": "queued"}
        return _json(201, body)


def _json(status: int, body: Mapping[str, object]) -> Answer:
    return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _write(directory: Path, sms: Sms) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{next(_counter):04d}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(sms)))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m keelson.devstack.smssink PORT DIR", file=sys.stderr)
        return 2
    provider = SmsProvider(DEV_ACCOUNT, DEV_TOKEN, directory=Path(args[1])).start(int(args[0]))
    print(f"smssink: Twilio-shaped API on {provider.url}, messages in {args[1]}", flush=True)
    threading.Event().wait()  # serve until terminated
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
