"""Staff accounts: creation, password hashing (argon2id) and role checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from publisher import audit
from publisher.errors import NotFound, PermissionDenied, ValidationError
from publisher.models import Membership, Office, Role, User
from publisher.orm import utcnow

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("govcast-timing-equaliser")
MIN_PASSWORD = 10
LOCKOUT_AFTER = 5
LOCKOUT_FOR = timedelta(minutes=15)


@dataclass(frozen=True)
class StaffMember:
    """A signed-in (or CLI-named) staff member and the roles they hold per office."""

    user_id: int
    name: str
    roles: dict[int, frozenset[Role]]

    def has(self, office_id: int, *roles: Role) -> bool:
        """Whether the member holds any of ``roles`` (or admin) in the office."""
        held = self.roles.get(office_id, frozenset())
        return Role.ADMIN in held or any(role in held for role in roles)

    def require(self, office_id: int, *roles: Role) -> None:
        """Raise PermissionDenied unless the member holds one of ``roles`` in the office."""
        if not self.has(office_id, *roles):
            names = " or ".join(r.value for r in roles)
            raise PermissionDenied(f"{self.name} needs the {names} role in this office")

    @property
    def offices(self) -> frozenset[int]:
        """Offices this member belongs to."""
        return frozenset(self.roles)

    def actor(self, origin: str = "") -> audit.Actor:
        """This member as the actor of audited actions."""
        return audit.Actor(label=self.name, user_id=self.user_id, origin=origin)


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    """Refuse passwords that are short or trivially guessable."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > 512:
        raise ValidationError("password", "must be at most 512 characters")
    if len(set(password)) < 4:
        raise ValidationError("password", "is too simple")


async def add_user(
    session: AsyncSession,
    name: str,
    password: str,
    roles: list[Role],
    office_keys: list[str],
    *,
    actor: audit.Actor,
    display_name: str = "",
) -> User:
    """Create a staff account with roles in the given offices."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{2,64}", name):
        raise ValidationError("name", "2-64 letters, digits, '.', '_' or '-'")
    check_password_strength(password)
    if (await session.execute(select(User).where(User.name == name))).scalar_one_or_none():
        raise ValidationError("name", f"a user named {name!r} already exists")
    offices = []
    for key in office_keys:
        office = (
            await session.execute(select(Office).where(Office.key == key))
        ).scalar_one_or_none()
        if office is None:
            raise ValidationError("office", f"no office {key!r}")
        offices.append(office)
    user = User(name=name, display_name=display_name or name, password_hash=hash_password(password))
    user.memberships = [
        Membership(office_id=office.id, role=role.value) for office in offices for role in roles
    ]
    session.add(user)
    await session.flush()
    audit.record(
        session,
        actor,
        "user.add",
        "user",
        user.id,
        name=name,
        roles=[r.value for r in roles],
        offices=office_keys,
    )
    return user


async def load_member(session: AsyncSession, name: str) -> StaffMember:
    """The active staff member with this name, with their roles."""
    user = (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    if user is None or not user.is_active:
        raise NotFound(f"no active user named {name!r}")
    return member_of(user)


def member_of(user: User) -> StaffMember:
    """A StaffMember view of a loaded User."""
    roles: dict[int, set[Role]] = {}
    for membership in user.memberships:
        roles.setdefault(membership.office_id, set()).add(Role(membership.role))
    return StaffMember(
        user_id=user.id, name=user.name, roles={k: frozenset(v) for k, v in roles.items()}
    )


async def authenticate(session: AsyncSession, name: str, password: str) -> User | None:
    """Check a password, counting failures and locking the account after too many."""
    user = (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    now = utcnow()
    if user is None or not user.is_active:
        # Spend the same time as a real check, so names cannot be probed by timing.
        _verify(_DUMMY_HASH, password)
        return None
    if user.locked_until and user.locked_until > now:
        return None
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER:
            user.locked_until = now + LOCKOUT_FOR
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
