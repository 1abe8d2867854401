"""Everything the users service's routes work with, built once per app from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from keelson_services.db import Database
from keelson_services.events import Outbox, OutboxRelay
from keelson_services.messaging import EventProducer
from keelson_services.services.users.access_tokens import AccessTokens
from keelson_services.services.users.account_tokens import AccountTokens
from keelson_services.services.users.accounts import EVENTS, Accounts
from keelson_services.services.users.config import UsersConfig
from keelson_services.services.users.passwords import Passwords
from keelson_services.services.users.refresh_tokens import RefreshTokens
from keelson_services.services.users.repository import UserRepository
from keelson_services.services.users.signing_keys import KeyRing
from keelson_services.settings import Settings

# Clock skew the gateway tolerates; a retired key stays published this much longer.
VERIFY_LEEWAY_SECONDS = 30
# The events the users service may publish, each when the platform declares it.
PUBLISHED = frozenset({"user.registered", "user.deleted", *EVENTS.values()})


@dataclass(frozen=True)
class UsersComponents:
    config: UsersConfig
    db: Database
    users: UserRepository
    passwords: Passwords
    keys: KeyRing
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokens
    accounts: Accounts
    relay: OutboxRelay | None  # publishes the users events the platform declares (PUBLISHED)

    @classmethod
    def build(cls, config: UsersConfig, database_uri: str, settings: Settings | None = None) -> UsersComponents:
        db = Database(database_uri, application_name="users")
        outbox = relay = None
        if settings is not None and PUBLISHED & {t.split(".", 1)[-1] for t in settings.publishes}:
            outbox = Outbox(domain=settings.domain, publishes=settings.publishes)
            relay = OutboxRelay(
                db,
                (lambda: EventProducer.from_settings(settings)) if settings.kafka_bootstrap else None,
                service=settings.service,
            )
        keys = KeyRing(
            db,
            sealer=config.sealer,
            rotation_period=config.key_rotation_period,
            verify_window=config.access_token_ttl + timedelta(seconds=VERIFY_LEEWAY_SECONDS),
        )
        users = UserRepository(db, outbox=outbox)
        tokens = AccountTokens(
            ttl={"verify_email": config.verification_ttl, "reset_password": config.password_reset_ttl}
        )
        return cls(
            config=config,
            db=db,
            users=users,
            passwords=Passwords(
                time_cost=config.argon2_time_cost,
                memory_kib=config.argon2_memory_kib,
                parallelism=config.argon2_parallelism,
                concurrency=config.hash_concurrency,
            ),
            keys=keys,
            access_tokens=AccessTokens(
                keys, issuer=config.issuer, audience=config.audience, ttl=config.access_token_ttl
            ),
            refresh_tokens=RefreshTokens(db, ttl=config.refresh_token_ttl),
            accounts=Accounts(
                db,
                users,
                tokens,
                outbox=outbox,
                links_url=config.links_url,
                resend_interval=config.link_resend_interval,
            ),
            relay=relay,
        )
