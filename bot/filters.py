"""Role gates for whole routers: `router.message.filter(HasRole(Role.OPERATOR))`.

The check is the server's: the sender's Telegram user id against ADMIN_IDS (admins hold every role)
and the roles stored by `RoleStore`, read afresh for every update, so a revoke takes effect at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User

from core.settings import Settings
from core.storage.roles import Role

__all__ = [
    "PRIVILEGED",
    "PRIVILEGED_BUTTONS",
    "PRIVILEGED_COMMANDS",
    "HasRole",
    "RoleReader",
]

# the commands each role's router serves; anyone else who sends one is refused and audited
PRIVILEGED: Final[Mapping[Role, tuple[str, ...]]] = {
    Role.ADMIN: ("grant", "revoke", "roles", "invite"),
    Role.OPERATOR: ("watch", "unwatch", "watched", "stats"),
    Role.ANALYST: ("search", "export"),
}
PRIVILEGED_COMMANDS: Final = tuple(command for commands in PRIVILEGED.values() for command in commands)
# the callback-data prefixes of each role router's buttons; pressed by anyone else: refused and audited
PRIVILEGED_BUTTONS: Final[Mapping[Role, tuple[str, ...]]] = {Role.ANALYST: ("s1", "x1")}


class RoleReader(Protocol):
    async def roles_of(self, user_id: int) -> set[Role]: ...


class HasRole(Filter):
    """Passes when the sender holds `role`; without a `roles` service only admins pass."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        event: TelegramObject,
        event_from_user: User | None = None,
        roles: RoleReader | None = None,
        settings: Settings | None = None,
    ) -> bool:
        if event_from_user is None or event_from_user.is_bot:
            return False
        if settings is not None and event_from_user.id in settings.admin_ids:
            return True
        if roles is None:
            return False
        return self.role in await roles.roles_of(event_from_user.id)

    def __str__(self) -> str:
        return f"HasRole({self.role.value})"
