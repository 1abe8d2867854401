"""Converging one server towards the databases a platform declares, over a `server.Session`.

Catalog reads first, DDL only for a difference: an unchanged platform costs two catalog queries
and no statement that changes anything. The Secret is the truth for a password; the server is
brought to it, except when a rotation is asked for (server first, then the Secret) or the Secret
is lost beyond recovery (a new password for both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keelson.databases.credentials import Credentials, checksum, new_password
from keelson.databases.server import LiveDatabase, LiveRole, Session


@dataclass(frozen=True)
class Wanted:
    service: str
    name: str  # of the database and of its owner role
    comment: str  # the ownership mark on both (see naming.owner_comment)
    base: Credentials  # endpoint, dbname and user; the password is decided here
    current: Credentials | None  # from the live Secret
    recovered: Credentials | None  # from operator memory, when the Secret is gone
    rotate: bool


@dataclass
class Provisioned:
    service: str
    creds: Credentials | None = None  # None when the service could not be provisioned
    actions: list[str] = field(default_factory=list)  # what was done, for Events; no secrets
    problem: str | None = None
    rotated: bool = False  # the password changed: pods must restart with the new one


def foreign(live: LiveRole | LiveDatabase | None, comment: str) -> bool:
    """True when a role or database of that name exists and is not this service's."""
    return live is not None and live.comment != comment


class Provisioner:
    def __init__(self, session: Session, verified: set[tuple[str, str, str]]) -> None:
        self.session = session
        # (endpoint, role, checksum) known to log in: checked once per operator lifetime, so a
        # steady platform never opens a connection per role per pass.
        self.verified = verified

    def _key(self, creds: Credentials) -> tuple[str, str, str]:
        return (f"{creds.host}:{creds.port}", creds.user, checksum(creds))

    async def converge(self, wanted: list[Wanted]) -> list[Provisioned]:
        names = [w.name for w in wanted]
        roles = await self.session.roles(names)
        databases = await self.session.databases(names)
        return [await self._one(w, roles.get(w.name), databases.get(w.name)) for w in wanted]

    async def _one(self, w: Wanted, role: LiveRole | None, database: LiveDatabase | None) -> Provisioned:
        out = Provisioned(w.service)
        for kind, live in (("role", role), ("database", database)):
            if foreign(live, w.comment):
                assert live is not None
                owner = live.comment or "no Keelson platform"
                out.problem = f"{kind} {w.name} exists and belongs to {owner}; not touched"
                return out
        creds = w.current or w.recovered
        if role is None:
            # A role dropped by hand comes back with the password the pods already have.
            if creds is None or w.rotate:
                creds, out.rotated = w.base.with_password(new_password()), creds is not None
            await self.session.create_role(w.name, creds.password, w.comment)
            self.verified.add(self._key(creds))
            out.actions.append(f"created role {w.name}")
        if database is None:
            await self.session.create_database(w.name, w.name, w.comment)
            out.actions.append(f"created database {w.name}")
        else:
            if database.owner != w.name:
                await self.session.set_owner(w.name, w.name)
                out.actions.append(f"gave database {w.name} back to its role")
            if database.public_can_connect:
                await self.session.revoke_public(w.name)
                out.actions.append(f"revoked CONNECT on {w.name} from PUBLIC")
        if role is not None:
            creds = await self._password(w, out)
        out.creds = creds
        return out

    async def _password(self, w: Wanted, out: Provisioned) -> Credentials:
        if w.rotate or (w.current is None and w.recovered is None):
            creds = w.base.with_password(new_password())
            await self.session.set_password(w.name, creds.password)
            self.verified.add(self._key(creds))
            out.rotated = True
            out.actions.append(f"{'rotated' if w.rotate else 'set a new'} password of role {w.name}")
            return creds
        if w.current is not None:
            creds = w.current
            if self._key(creds) not in self.verified:
                if await self.session.can_login(creds) is False:
                    # E.g. a rotation interrupted between the server and the Secret: the
                    # Secret, which the pods read, wins.
                    await self.session.set_password(w.name, creds.password)
                    out.actions.append(f"reset password of role {w.name} to its Secret's")
                self.verified.add(self._key(creds))
            return creds
        assert w.recovered is not None
        if await self.session.can_login(w.recovered) is False:
            creds = w.base.with_password(new_password())
            await self.session.set_password(w.name, creds.password)
            out.rotated = True
            out.actions.append(f"Secret lost: set a new password of role {w.name}")
        else:
            creds = w.recovered
            out.actions.append(f"restored the Secret of {w.service} with its unchanged password")
        self.verified.add(self._key(creds))
        return creds

    async def drop(self, name: str, comment: str) -> str | None:
        """Drop a service's database and role if they are its own; the problem otherwise."""
        roles = await self.session.roles([name])
        databases = await self.session.databases([name])
        for live in (roles.get(name), databases.get(name)):
            if foreign(live, comment):
                return f"{name} belongs to {live.comment if live else ''}; not dropped"
        if name in roles or name in databases:
            await self.session.drop(name)
        return None
