"""Bodies of the users service's part of the public API (`/users`, `/auth`, `/admin/users`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keelson_services.contracts.text import Email, LoginEmail, Name, Password

Role = Literal["customer", "admin"]
ROLES: tuple[Role, ...] = ("customer", "admin")


class _Request(BaseModel):
    # Unknown fields are refused: a typo in a field name must not pass as "no change".
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Request):
    email: Email
    password: Password
    name: Name


class TokenRequest(_Request):
    email: LoginEmail
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshRequest(_Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class LogoutRequest(_Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


# A link's token as the users service issues it (`kve_`/`kpr_` and 43 URL-safe characters);
# anything longer is no token of ours.
LinkToken = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class VerifyEmailRequest(_Request):
    token: LinkToken


class PasswordResetRequest(_Request):
    email: LoginEmail


class PasswordResetConfirm(_Request):
    token: LinkToken
    new_password: Password


class AccountState(BaseModel):
    """What the gateway holds an access token against (internal: users to gateway only)."""

    id: UUID
    active: bool
    roles: list[Role]
    email_verified: bool
    token_version: int


class TokenResponse(BaseModel):
    access_token: str = Field(description="A JWT (EdDSA) to send as `Authorization: Bearer ...`.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserProfile(BaseModel):
    id: UUID
    email: str
    name: str
    roles: list[Role]
    active: bool
    email_verified: bool = Field(description="Until it is, the account may not place orders (docs/accounts.md).")
    created_at: datetime


class ProfileUpdate(_Request):
    # The validator's rule, in the document too, so that a client (or a fuzzer) reading the
    # schema knows that a new password without the current one is refused.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"password": {"type": "string"}}, "required": ["password"]},
            "then": {"properties": {"current_password": {"type": "string"}}, "required": ["current_password"]},
        }
    )

    name: Name | None = None
    password: Password | None = Field(None, description="A new password; needs `current_password`.")
    current_password: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _password_change_needs_the_old_one(self) -> ProfileUpdate:
        if self.password is not None and self.current_password is None:
            raise ValueError("changing the password needs current_password")
        return self


class UserList(BaseModel):
    items: list[UserProfile]
    limit: int
    offset: int
    total: int


class AdminUserUpdate(_Request):
    roles: Annotated[list[Role], Field(min_length=1, max_length=2)] | None = None
    active: bool | None = None


class SigningKeyInfo(BaseModel):
    kid: str
    created_at: datetime
