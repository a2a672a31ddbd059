"""Admins (ADMIN_IDS): /grant, /revoke, /roles, /invite. And the refusal everyone else gets for any
privileged command or button: include `build_denied_router()` after every privileged router."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.filters import PRIVILEGED_BUTTONS, PRIVILEGED_COMMANDS, HasRole
from bot.middlewares import AuditMiddleware, audit_detail
from bot.parsing import shown
from bot.services.subscribers import ServiceError
from bot.texts import Html, Translator, escape
from core.settings import Settings
from core.storage.roles import GRANTABLE, Role, RoleStore
from core.subscriptions import Subscriber

log = logging.getLogger("tgmon.bot")

ROLE_NAMES = ", ".join(role.value for role in GRANTABLE)
MAX_USER_ID = 2**52  # the Bot API's bound on user ids


async def resolve_user(roles: RoleStore, text: str) -> int:
    """A numeric Telegram user id, or the @username of someone who has written to the bot."""
    if text.isdigit():
        if text.isascii() and len(text) <= 16 and 0 < int(text) < MAX_USER_ID:
            return int(text)
        raise ServiceError("unknown_user", user=shown(text))
    found = await roles.user_by_username(text) if text.startswith("@") or text[:1].isalpha() else None
    if found is None:
        raise ServiceError("unknown_user", user=shown(text))
    return found


def role_arg(text: str) -> Role:
    name = text.lower()
    if name == Role.ADMIN:
        raise ServiceError("role_admin_fixed")
    for role in GRANTABLE:
        if role == name:
            return role
    raise ServiceError("bad_role", role=shown(text), roles=ROLE_NAMES)


async def user_and_role(command: CommandObject, roles: RoleStore, usage: str) -> tuple[int, Role, str]:
    """(user id, role, how to name the user) from `<user> <role>`."""
    words = (command.args or "").split()
    if len(words) != 2:
        raise ServiceError(usage, roles=ROLE_NAMES)
    role = role_arg(words[1])
    user_id = await resolve_user(roles, words[0])
    return user_id, role, await user_label(roles, user_id)


async def user_label(roles: RoleStore, user_id: int) -> str:
    username = await roles.username_of(user_id)
    return f"@{username} ({user_id})" if username else str(user_id)


async def on_grant(
    message: Message, command: CommandObject, subscriber: Subscriber, t: Translator, roles: RoleStore
) -> None:
    try:
        user_id, role, who = await user_and_role(command, roles, "grant_usage")
    except ServiceError as error:
        await message.answer(t.refusal(error))
        return
    added = await roles.grant(user_id, role, subscriber.id)
    if added:
        log.info("role_granted user=%s role=%s by=%s", user_id, role.value, subscriber.id)
    await message.answer(t("granted" if added else "already_granted", user=who, role=role.value))


async def on_revoke(
    message: Message, command: CommandObject, subscriber: Subscriber, t: Translator, roles: RoleStore
) -> None:
    try:
        user_id, role, who = await user_and_role(command, roles, "revoke_usage")
    except ServiceError as error:
        await message.answer(t.refusal(error))
        return
    removed = await roles.revoke(user_id, role)
    if removed:
        log.info("role_revoked user=%s role=%s by=%s", user_id, role.value, subscriber.id)
    if roles.is_admin(user_id):
        await message.answer(t("revoke_admin", user=who))
        return
    await message.answer(t("revoked" if removed else "not_granted", user=who, role=role.value))


async def on_roles(message: Message, t: Translator, roles: RoleStore) -> None:
    async def names(ids: list[int]) -> Html:
        if not ids:
            return t("roles_nobody")
        return Html(", ".join([escape(await user_label(roles, user_id)) for user_id in ids]))

    grants = await roles.all_roles()
    lines = [
        t("roles_title"),
        t("roles_admins", users=await names(sorted(roles.admins))),
        t("roles_operators", users=await names([g.user_id for g in grants if g.role is Role.OPERATOR])),
        t("roles_analysts", users=await names([g.user_id for g in grants if g.role is Role.ANALYST])),
    ]
    await message.answer(Html("\n".join(lines)))


async def on_invite(
    message: Message, subscriber: Subscriber, t: Translator, roles: RoleStore, settings: Settings, bot: Bot
) -> None:
    code = await roles.create_invite(subscriber.id)
    me = await bot.me()
    link = f"https://t.me/{me.username}?start={code}" if me.username else f"/start {code}"
    log.info("invite_created by=%s", subscriber.id)
    text = t("invite_created", link=link)
    if settings.subscribe_mode != "invite":
        text = Html(f"{text}\n\n{t('invite_open_note')}")
    await message.answer(text)


async def on_denied(
    message: Message, command: CommandObject, subscriber: Subscriber, t: Translator, roles: RoleStore
) -> None:
    """A privileged command from someone without the role: a plain refusal, logged and audited."""
    log.warning("command_denied user=%s command=%s", subscriber.id, command.command)
    await roles.audit(subscriber.id, command.command, audit_detail(command.args), False)
    await message.answer(t("not_allowed"))


async def on_denied_button(
    callback: CallbackQuery, subscriber: Subscriber, t: Translator, roles: RoleStore
) -> None:
    """A privileged button (a revoked role's old one, or forged data): refused, logged and audited."""
    prefix = (callback.data or "").split(":", 1)[0]
    log.warning("button_denied user=%s button=%s", subscriber.id, prefix)
    await roles.audit(subscriber.id, f"button:{prefix}", audit_detail(callback.data), False)
    await callback.answer(t("not_allowed"))


def build_router() -> Router:
    """Admins only: the role gate sits on the whole router (a router joins one dispatcher only).
    Its commands are bot.filters.PRIVILEGED[Role.ADMIN]."""
    router = Router(name="admin")
    router.message.filter(HasRole(Role.ADMIN))
    router.message.middleware(AuditMiddleware())
    router.message.register(on_grant, Command("grant"))
    router.message.register(on_revoke, Command("revoke"))
    router.message.register(on_roles, Command("roles"))
    router.message.register(on_invite, Command("invite"))
    return router


def build_denied_router() -> Router:
    """Every privileged command that no role router took: include after those routers, before start."""
    router = Router(name="denied")
    router.message.register(on_denied, Command(*PRIVILEGED_COMMANDS))
    for role, prefixes in PRIVILEGED_BUTTONS.items():  # a role holder's malformed button: "out of date"
        data = F.data.startswith(tuple(f"{prefix}:" for prefix in prefixes))
        router.callback_query.register(on_denied_button, data, ~HasRole(role))
    return router
