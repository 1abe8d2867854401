"""Account flows that span tables and events (docs/accounts.md): registration with its
verification link, verification, password reset and erasure. Each is one transaction with its
events in the outbox, so a link's email goes out exactly when its token exists, and
`user.deleted` exactly when the account was erased.

Verification is on when the platform declares `user.verification-requested` among the users
service's publishes (the email needs it); without it accounts are created verified. Reset needs
`user.password-reset-requested` likewise; without it a reset request sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from uuid import UUID

from keelson_services.db import Connection, Database
from keelson_services.errors import ApiError
from keelson_services.events import Outbox
from keelson_services.services.users.account_tokens import AccountTokens, Purpose
from keelson_services.services.users.repository import User, UserRepository

log = logging.getLogger("keelson.users.accounts")

EVENTS: Mapping[Purpose, str] = {
    "verify_email": "user.verification-requested",
    "reset_password": "user.password-reset-requested",
}


class Accounts:
    def __init__(
        self,
        db: Database,
        users: UserRepository,
        tokens: AccountTokens,
        *,
        outbox: Outbox | None,
        links_url: str,
        resend_interval: timedelta,
    ) -> None:
        """`links_url`: where the links in the emails point (the shop's front end, which posts the
        token to the API); `resend_interval`: how soon another link may be emailed."""
        self.db = db
        self.users = users
        self.tokens = tokens
        self.outbox = outbox
        self.links_url = links_url
        self.resend_interval = resend_interval

    def sends(self, purpose: Purpose) -> bool:
        return self.outbox is not None and self.outbox.declares(EVENTS[purpose])

    @property
    def verifies_email(self) -> bool:
        return self.sends("verify_email")

    async def register(self, *, email: str, name: str, password_hash: str) -> User:
        async with self.db.connection() as conn:
            user = await self.users.create(
                conn, email=email, name=name, password_hash=password_hash, verified=not self.verifies_email
            )
            if not user.email_verified:
                await self._send_link(conn, user.id, "verify_email")
        return user

    async def resend_verification(self, user: User) -> None:
        if user.email_verified:
            raise ApiError(409, "email_already_verified", "This account's email is verified already")
        async with self.db.connection() as conn:
            if not await self.tokens.issued_within(conn, user.id, "verify_email", self.resend_interval):
                await self._send_link(conn, user.id, "verify_email")

    async def verify_email(self, token: str) -> None:
        async with self.db.connection() as conn:
            user_id = await self.tokens.consume(conn, token, "verify_email")
            await self.users.mark_verified(conn, user_id)
        log.info("email verified", extra={"user_id": str(user_id)})

    async def request_password_reset(self, email: str) -> None:
        """Email a reset link to the account with `email`, if there is an active one. The caller
        answers the same whatever happens here: no account enumeration."""
        user = await self.users.by_email(email)
        if user is None or not user.active or user.erased or not self.sends("reset_password"):
            return
        async with self.db.connection() as conn:
            if not await self.tokens.issued_within(conn, user.id, "reset_password", self.resend_interval):
                await self._send_link(conn, user.id, "reset_password")

    async def reset_password(self, token: str, password_hash: str) -> None:
        """Set the password of the link's account; every session of the account ends, and its
        email counts as verified (the link reached its mailbox)."""
        async with self.db.connection() as conn:
            user_id = await self.tokens.consume(conn, token, "reset_password")
            user = await self.users.by_id(user_id, conn)
            if user is None or not user.active:
                raise ApiError(403, "account_deactivated", "This account is deactivated")
            await self.users.set_password(conn, user_id, password_hash)
            await self.users.mark_verified(conn, user_id)
            await self.users.end_sessions(conn, user_id)
        log.info("password reset", extra={"user_id": str(user_id)})

    async def erase(self, user_id: UUID) -> bool:
        async with self.db.connection() as conn:
            found = await self.users.erase(conn, user_id)
        if found:
            log.info("account erased", extra={"user_id": str(user_id)})
        return found

    async def _send_link(self, conn: Connection, user_id: UUID, purpose: Purpose) -> None:
        if self.outbox is None or not self.sends(purpose):
            return
        token, expires_at = await self.tokens.issue(conn, user_id, purpose)
        data = {
            "user_id": str(user_id),
            "token": token,  # dropped from the outbox's copy once published (events.SECRET_FIELDS)
            "expires_at": expires_at.isoformat(),
            "links_url": self.links_url,
        }
        await self.outbox.add(conn, EVENTS[purpose], data, key=str(user_id))
