"""`GET/PUT /api/v1/notifications/preferences`: which messages the caller gets on which channel.
Transactional ones (payments, an order's states, account security) are always sent: they are
listed locked, and a change can name only the categories that are a choice (the contract)."""

from __future__ import annotations

from fastapi import APIRouter

from keelson_services.contracts.notifications import Preference, PreferenceList, PreferencesUpdate
from keelson_services.deps import CurrentIdentity
from keelson_services.services.notifications.catalogue import CATEGORIES
from keelson_services.services.notifications.deps import Components
from keelson_services.services.notifications.rendering import CHANNELS

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


async def _current(parts: Components, user_id: str) -> PreferenceList:
    chosen = await parts.contacts.preferences(user_id)
    return PreferenceList(
        items=[
            Preference(
                channel=channel,
                category=category,
                enabled=category == "transactional" or chosen.get((channel, category), True),
                locked=category == "transactional",
            )
            for channel in CHANNELS
            for category in CATEGORIES
        ]
    )


@router.get("/preferences", response_model=PreferenceList, summary="My notification preferences")
async def get_preferences(caller: CurrentIdentity, parts: Components) -> PreferenceList:
    return await _current(parts, caller.user_id)


@router.put("/preferences", response_model=PreferenceList, summary="Change my notification preferences")
async def put_preferences(body: PreferencesUpdate, caller: CurrentIdentity, parts: Components) -> PreferenceList:
    """Only the pairs named change; the others keep their setting."""
    choices: dict[tuple[str, str], bool] = {(c.channel, c.category): c.enabled for c in body.items}
    await parts.contacts.set_preferences(caller.user_id, choices)
    return await _current(parts, caller.user_id)
