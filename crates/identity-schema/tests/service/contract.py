"""The identity service's contract (spec `service-models.md`, section 5), checked through real
SQLAlchemy against a database that identity-migrate brought to head.

Usage: IDENTITY_CONTRACT_URL=URL python contract.py, with URL `postgresql+asyncpg://...` or
`sqlite+aiosqlite:///PATH` (from the environment, so that a password never shows in a process
list; the URL is never printed).

Each check prints `ok   <name>` or `FAIL <name>: <why>`; the last line counts them, and the exit
code is 1 when any failed. The checks, by the contract's conditions:

1. every model column exists with a type that takes the ORM's bind and reads back its type;
2. every database-only column is nullable or has a server default;
3. a full row and a minimal row of every table, written by the ORM, read back equal and of the
   same Python types in a new session; then updated and deleted through the ORM (a `User`
   delete reads `user_sessions`, `user_activity_logs` and `mfa_methods`);
4. the service's statements, in the shapes the spec records (section 3): register, verify,
   login, password reset, organization, profile, preferences, activity summary;
5. loaded datetimes are naive UTC, comparable with `utcnow()`;
6. PostgreSQL: the service's equality lookups, compiled by the ORM (`col = $1::VARCHAR`), are
   index-served under `enable_seqscan = off`;
7. a row inserted by plain SQL naming only the required columns is found by the ORM by its id,
   its defaults of the model's Python types (PostgreSQL: in a session whose time zone is not UTC).
"""

import asyncio
import os
import sys
import traceback
import uuid
import warnings
from datetime import datetime, timedelta

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, inspect, select, text, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from models import (
    MODELS,
    EmailVerification,
    MFAChallenge,
    MFAMethod,
    Organization,
    PasswordReset,
    User,
    UserActivityLog,
    UserPreference,
    UserProfile,
    UserSession,
    utcnow,
)

CHECKS = []


def check(condition):
    def register(fn):
        CHECKS.append((f"{condition} {fn.__name__}", fn))
        return fn

    return register


class Failed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failed(message)


def columns(model):
    return list(model.__table__.columns)


# Values a full row writes: of the column's type, other than its default, and valid for the
# CHECK constraints the schema adds (enum-like values, non-negative counters, addresses).
SPECIAL = {
    "status": "active",
    "theme_preference": "dark",
    "organization_type": "enterprise",
    "method_type": "totp",
    "challenge_type": "totp",
    "country_code": "DE",
    "language_code": "fr",
    "timezone": "Europe/Paris",
    "last_login_ip": "2001:db8::7",
    "ip_address": "203.0.113.9",
    "verification_type": "email_change",
    "subscription_tier": "enterprise-annual",
    "category": "notifications",
}


def python_default(column):
    """The value the ORM writes when the attribute is not set (None without a default)."""
    if column.default is None:
        return None
    # SQLAlchemy wraps a callable default into one that takes the execution context.
    return column.default.arg(None) if column.default.is_callable else column.default.arg


def full_value(column, tag):
    name, ty = column.name, column.type
    if name in SPECIAL:
        return SPECIAL[name]
    if isinstance(ty, UUID):
        return uuid.uuid4()
    if isinstance(ty, Boolean):
        default = python_default(column)
        return not default if isinstance(default, bool) else True
    if isinstance(ty, Integer):
        return 7
    if isinstance(ty, DateTime):
        return datetime(2024, 2, 29, 23, 59, 59, 123456)
    if isinstance(ty, JSON):
        if isinstance(python_default(column), list):
            return [1, "two", {"three": None}]
        return {"a": [1, {"b": None}], "é": "x y", "n": 1.5}
    if isinstance(ty, Text):
        # Longer than the `varchar(500)` that `user_agent` was at 68d314520251.
        return f"{name}-{tag}-" + "x" * 600
    if isinstance(ty, String):
        return f"{name}-{tag}-{uuid.uuid4().hex}"[: ty.length]
    raise Failed(f"no value for {column}")


def required(column):
    """NOT NULL in the model and without a Python default: what a minimal row sets."""
    return not column.nullable and column.default is None and not column.primary_key


def same(written, loaded):
    """Equal, and of the same Python type (a driver's subclass of UUID counts as UUID)."""
    if written is None:
        return loaded is None
    if isinstance(written, uuid.UUID):
        return isinstance(loaded, uuid.UUID) and loaded == written
    if isinstance(written, datetime):
        return isinstance(loaded, datetime) and loaded.tzinfo is None and loaded == written
    if isinstance(written, bool):
        return type(loaded) is bool and loaded == written
    return type(loaded) is type(written) and loaded == written


class Ctx:
    def __init__(self, url):
        self.url = url
        self.engine = create_async_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = self.engine.dialect.name == "postgresql"


async def parents(ctx, tag):
    """An organization, two users (a profile's user is unique), an MFA method: what the other
    tables' rows point at."""
    async with ctx.sessions() as s:
        org = Organization(name=f"org {tag}", slug=f"org-{tag}")
        s.add(org)
        await s.flush()
        users = [User(email=f"{tag}-{i}@example.com", password_hash="h", organization_id=org.id) for i in (1, 2)]
        s.add_all(users)
        await s.flush()
        method = MFAMethod(user_id=users[0].id, method_type="sms", phone_number="+33100000000")
        s.add(method)
        await s.commit()
        return org, users, method


FOREIGN = {"user_id", "manager_user_id", "organization_id", "mfa_method_id"}


def row_values(model, refs, full, tag):
    values = {}
    for c in columns(model):
        if c.primary_key:
            continue
        if c.name in FOREIGN:
            if full or required(c):
                values[c.name] = refs[c.name]
            continue
        if full or required(c):
            values[c.name] = full_value(c, tag)
    return values


async def write_and_read_back(ctx, model, refs, full, tag):
    async with ctx.sessions() as s:
        obj = model(**row_values(model, refs, full, tag))
        s.add(obj)
        await s.commit()
    written = {c.name: getattr(obj, c.name) for c in columns(model)}
    async with ctx.sessions() as s:
        loaded = await s.get(model, obj.id)
        expect(loaded is not None, f"{model.__tablename__}: the row is not found by its id")
        for name, value in written.items():
            got = getattr(loaded, name)
            expect(
                same(value, got),
                f"{model.__tablename__}.{name}: wrote {value!r} ({type(value).__name__}), "
                f"read {got!r} ({type(got).__name__})",
            )
    return obj


@check("1")
async def every_model_column_exists_with_a_type_that_reads_back(ctx):
    def describe(sync_conn):
        insp = inspect(sync_conn)
        return {m.__tablename__: {c["name"]: c for c in insp.get_columns(m.__tablename__)} for m in MODELS}

    async with ctx.engine.connect() as conn:
        tables = await conn.run_sync(describe)
        affinity = {}
        if not ctx.postgres:
            for m in MODELS:
                rows = await conn.execute(text(f"SELECT name, type FROM pragma_table_info('{m.__tablename__}')"))
                affinity[m.__tablename__] = {r[0]: r[1].upper() for r in rows}
    problems = []
    for m in MODELS:
        live = tables[m.__tablename__]
        for c in columns(m):
            at = f"{m.__tablename__}.{c.name}"
            if c.name not in live:
                problems.append(f"{at} is missing")
                continue
            if ctx.postgres:
                problem = postgres_type_problem(c, live[c.name]["type"])
            else:
                problem = sqlite_type_problem(c, affinity[m.__tablename__][c.name])
            if problem:
                problems.append(f"{at}: {problem}")
    expect(not problems, "; ".join(problems))


def postgres_type_problem(column, live):
    name = live.__class__.__name__.upper()
    ty = column.type
    if isinstance(ty, UUID):
        return None if name == "UUID" else f"{name}, not uuid"
    if isinstance(ty, Text):
        return None if name == "TEXT" or (name == "VARCHAR" and live.length is None) else f"{name}({getattr(live, 'length', '')}), not text"
    if isinstance(ty, String):
        if name == "TEXT":
            return None
        if name == "VARCHAR" and (live.length is None or live.length >= ty.length):
            return None
        return f"{name}({getattr(live, 'length', '')}), not varchar({ty.length}) or wider"
    if isinstance(ty, DateTime):
        return None if name == "TIMESTAMP" and not live.timezone else f"{name} (timezone={getattr(live, 'timezone', None)})"
    if isinstance(ty, JSON):
        return None if name in ("JSON", "JSONB") else f"{name}, not json"
    if isinstance(ty, Boolean):
        return None if name == "BOOLEAN" else f"{name}, not boolean"
    if isinstance(ty, Integer):
        return None if name in ("INTEGER", "BIGINT") else f"{name}, not integer"
    return f"unexpected model type {ty}"


def sqlite_type_problem(column, declared):
    # SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1).
    if "INT" in declared:
        affinity = "INTEGER"
    elif any(k in declared for k in ("CHAR", "CLOB", "TEXT")):
        affinity = "TEXT"
    elif "BLOB" in declared or not declared:
        affinity = "BLOB"
    elif any(k in declared for k in ("REAL", "FLOA", "DOUB")):
        affinity = "REAL"
    else:
        affinity = "NUMERIC"
    ty = column.type
    # Text forms the ORM writes must stay text: 32-hex ids (digits only would be a number
    # under NUMERIC), JSON documents, strings. Datetimes never read as numbers.
    if isinstance(ty, (UUID, String, JSON)):
        return None if affinity == "TEXT" else f"{declared} has {affinity} affinity, not TEXT"
    if isinstance(ty, DateTime):
        return None if affinity in ("TEXT", "NUMERIC") else f"{declared} has {affinity} affinity"
    if isinstance(ty, (Boolean, Integer)):
        return None if affinity in ("INTEGER", "NUMERIC") else f"{declared} has {affinity} affinity"
    return f"unexpected model type {ty}"


@check("2")
async def every_database_only_column_is_nullable_or_has_a_default(ctx):
    def describe(sync_conn):
        insp = inspect(sync_conn)
        return {m.__tablename__: insp.get_columns(m.__tablename__) for m in MODELS}

    async with ctx.engine.connect() as conn:
        tables = await conn.run_sync(describe)
    problems = []
    for m in MODELS:
        mine = {c.name for c in columns(m)}
        for c in tables[m.__tablename__]:
            if c["name"] not in mine and not c["nullable"] and c.get("default") is None:
                problems.append(f"{m.__tablename__}.{c['name']}")
    expect(not problems, "NOT NULL without a default, unknown to the ORM: " + ", ".join(problems))


@check("3")
async def full_and_minimal_rows_read_back_equal_then_update_and_delete(ctx):
    tag = uuid.uuid4().hex[:12]
    org, (user, other), method = await parents(ctx, tag)
    written = []
    for model in MODELS:
        for full in (True, False):
            owner = user if full else other
            refs = {"user_id": owner.id, "manager_user_id": user.id, "organization_id": org.id, "mfa_method_id": method.id}
            if model is User:
                # Unique emails and usernames: a tag per row.
                row_tag = f"{tag}-{'full' if full else 'min'}"
            else:
                row_tag = tag
            written.append(await write_and_read_back(ctx, model, refs, full, row_tag))
    # Update each through the ORM: one column it sets, and `onupdate` (or the trigger) moves
    # `updated_at`, which must stay a naive datetime close to the ORM's value.
    for obj in written:
        model = type(obj)
        string = next(c for c in columns(model) if isinstance(c.type, String) and not c.primary_key and c.name not in SPECIAL and c.name not in FOREIGN)
        async with ctx.sessions() as s:
            mine = await s.get(model, obj.id)
            new_value = f"updated-{uuid.uuid4().hex}"[: string.type.length]
            setattr(mine, string.name, new_value)
            await s.commit()
            in_memory = getattr(mine, "updated_at", None)
        async with ctx.sessions() as s:
            loaded = await s.get(model, obj.id)
            expect(getattr(loaded, string.name) == new_value, f"{model.__tablename__}.{string.name} not updated")
            if in_memory is not None:
                stored = loaded.updated_at
                expect(isinstance(stored, datetime) and stored.tzinfo is None, f"{model.__tablename__}.updated_at is {stored!r}")
                expect(abs(stored - in_memory) < timedelta(seconds=5), f"{model.__tablename__}.updated_at {stored} far from the ORM's {in_memory}")
    # Delete through the ORM, children first; the user last, with a session the ORM cascades
    # to, and the three relationships it loads on the way.
    async with ctx.sessions() as s:
        s.add(UserSession(user_id=user.id, access_token_jti=f"jti-{tag}", ip_address="198.51.100.1", expires_at=utcnow() + timedelta(hours=1)))
        await s.commit()
    for obj in reversed(written):
        async with ctx.sessions() as s:
            await s.delete(await s.get(type(obj), obj.id))
            await s.commit()
    async with ctx.sessions() as s:
        for obj in written:
            expect(await s.get(type(obj), obj.id) is None, f"{type(obj).__tablename__} row not deleted")
    async with ctx.sessions() as s:
        await s.delete(await s.get(MFAMethod, method.id))
        await s.commit()
    async with ctx.sessions() as s:
        await s.delete(await s.get(User, user.id))
        await s.delete(await s.get(User, other.id))
        await s.commit()
    async with ctx.sessions() as s:
        expect(await s.get(User, user.id) is None, "user not deleted")
        left = (await s.execute(select(UserSession).where(UserSession.user_id == user.id))).scalars().all()
        expect(not left, "the user's session was not deleted with it")
        await s.delete(await s.get(Organization, org.id))
        await s.commit()


@check("4")
async def the_services_statements_run(ctx):
    tag = uuid.uuid4().hex[:12]
    email = f"Grace.{tag}@example.com"
    now = utcnow()
    async with ctx.sessions() as s:
        # Register: the duplicate pre-check by email, the insert, the duplicate found.
        found = (await s.execute(select(User).where(User.email == email))).scalar_one_or_none()
        expect(found is None, "a new email is already taken")
        org_slug = f"acme-{tag}"
        expect((await s.execute(select(Organization).where(Organization.slug == org_slug))).scalar_one_or_none() is None, "slug taken")
        org = Organization(name="Acme", slug=org_slug)
        s.add(org)
        await s.flush()
        user = User(email=email, username=f"grace{tag}", password_hash="argon2-hash", organization_id=org.id)
        s.add(user)
        await s.commit()
        expect((await s.execute(select(User).where(User.email == email))).scalar_one() is not None, "duplicate not seen")
        expect((await s.execute(select(Organization).where(Organization.slug == org_slug))).scalar_one().id == org.id, "duplicate slug not seen")
        # Verification e-mail and verify.
        s.add(EmailVerification(user_id=user.id, email=email, token_hash=f"v-{tag}", expires_at=now + timedelta(hours=24), ip_address="192.0.2.10"))
        await s.commit()
        pending = (await s.execute(select(EmailVerification).where(EmailVerification.token_hash == f"v-{tag}", EmailVerification.is_verified == False, EmailVerification.expires_at > utcnow()))).scalar_one()  # noqa: E712
        pending.is_verified = True
        pending.verified_at = utcnow()
        user.is_verified = True
        user.status = "active"
        await s.commit()
        # Login, then a wrong password.
        login = (await s.execute(select(User).where(User.email == email))).scalar_one()
        login.last_login_at = utcnow()
        login.last_login_ip = "2001:db8::42"
        login.failed_login_attempts = 0
        await s.commit()
        login.failed_login_attempts += 1
        await s.commit()
        # Token validation: by id.
        expect((await s.get(User, user.id)).failed_login_attempts == 1, "failed attempts not counted")
        # Password reset.
        s.add(PasswordReset(user_id=user.id, email=email, token_hash=f"r-{tag}", expires_at=utcnow() + timedelta(hours=1)))
        await s.commit()
        reset = (await s.execute(select(PasswordReset).where(PasswordReset.token_hash == f"r-{tag}", PasswordReset.is_used == False, PasswordReset.expires_at > utcnow()))).scalar_one()  # noqa: E712
        reset.is_used = True
        reset.used_at = utcnow()
        login.password_hash = "new-hash"
        login.password_changed_at = utcnow()
        await s.commit()
        # Profile, preferences (update by user, category and key, else insert), activity.
        s.add(UserProfile(user_id=user.id, job_title="Engineer"))
        await s.commit()
        expect((await s.execute(select(UserProfile).where(UserProfile.user_id == user.id))).scalar_one().job_title == "Engineer", "profile")
        for category, key, value in [("notifications", "email", True), ("notifications", "email", False), ("ui", "email", {"x": 1})]:
            updated = (await s.execute(update(UserPreference).where(UserPreference.user_id == user.id, UserPreference.category == category, UserPreference.key == key).values(value=value, updated_at=utcnow()).returning(UserPreference.id))).scalar_one_or_none()
            if updated is None:
                s.add(UserPreference(user_id=user.id, category=category, key=key, value=value))
            await s.commit()
        prefs = (await s.execute(select(UserPreference).where(UserPreference.user_id == user.id).order_by(UserPreference.category))).scalars().all()
        expect([(p.category, p.key, p.value) for p in prefs] == [("notifications", "email", False), ("ui", "email", {"x": 1})], f"preferences {[(p.category, p.key, p.value) for p in prefs]}")
        for i in range(3):
            s.add(UserActivityLog(user_id=user.id, action=f"auth.login.{i}", resource="session", event_metadata={"i": i}))
            await s.commit()
        recent = (await s.execute(select(UserActivityLog).where(UserActivityLog.user_id == user.id).order_by(UserActivityLog.created_at.desc()).limit(10))).scalars().all()
        expect(len(recent) == 3, f"{len(recent)} activity rows")
        since = (await s.execute(select(UserActivityLog).where(UserActivityLog.user_id == user.id, UserActivityLog.created_at >= utcnow() - timedelta(days=30)))).scalars().all()
        expect(len(since) == 3, "activity since")
        members = (await s.execute(select(User).where(User.organization_id == org.id))).scalars().all()
        expect([m.id for m in members] == [user.id], "organization members")


@check("5")
async def loaded_datetimes_are_naive_utc(ctx):
    tag = uuid.uuid4().hex[:12]
    async with ctx.sessions() as s:
        user = User(email=f"{tag}@example.com", password_hash="h")
        s.add(user)
        await s.commit()
    async with ctx.sessions() as s:
        loaded = await s.get(User, user.id)
        now = utcnow()
        for name in ("created_at", "updated_at"):
            value = getattr(loaded, name)
            expect(value.tzinfo is None, f"{name} is aware: {value!r}")
            # The service's comparison; it raises on an aware datetime.
            expect(now - timedelta(minutes=5) < value <= now + timedelta(seconds=1), f"{name} {value} is not utcnow() ({now})")


LOOKUPS = [
    ("users.email", lambda: select(User).where(User.email == "a@example.com"), "email"),
    ("users.username", lambda: select(User).where(User.username == "grace"), "username"),
    ("users.id", lambda: select(User).where(User.id == uuid.uuid4()), "id"),
    ("organizations.slug", lambda: select(Organization).where(Organization.slug == "acme"), "slug"),
    ("users.organization_id", lambda: select(User).where(User.organization_id == uuid.uuid4()), "organization_id"),
    ("email_verifications.token_hash", lambda: select(EmailVerification).where(EmailVerification.token_hash == "t", EmailVerification.is_verified == False, EmailVerification.expires_at > utcnow()), "token_hash"),  # noqa: E712
    ("password_resets.token_hash", lambda: select(PasswordReset).where(PasswordReset.token_hash == "t", PasswordReset.is_used == False, PasswordReset.expires_at > utcnow()), "token_hash"),  # noqa: E712
    ("user_sessions.access_token_jti", lambda: select(UserSession).where(UserSession.access_token_jti == "j"), "access_token_jti"),
    ("user_profiles.user_id", lambda: select(UserProfile).where(UserProfile.user_id == uuid.uuid4()), "user_id"),
    # The service sets `value` (JSON); a text column here keeps the bind plain for EXPLAIN.
    ("user_preferences (user_id, category, key)", lambda: update(UserPreference).where(UserPreference.user_id == uuid.uuid4(), UserPreference.category == "ui", UserPreference.key == "theme").values(description="d").returning(UserPreference.id), "key"),
    ("user_activity_logs.user_id", lambda: select(UserActivityLog).where(UserActivityLog.user_id == uuid.uuid4()).order_by(UserActivityLog.created_at.desc()).limit(10), "user_id"),
]


@check("6")
async def the_lookups_are_index_served(ctx):
    if not ctx.postgres:
        return "skipped: PostgreSQL only"
    problems = []
    async with ctx.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("SET enable_seqscan = off")
        for name, build, column in LOOKUPS:
            compiled = build().compile(dialect=ctx.engine.dialect)
            params = compiled.construct_params()
            args = [params[p] for p in compiled.positiontup]
            plan = "\n".join(r[0] for r in await raw.fetch("EXPLAIN " + str(compiled), *args))
            cond = [line for line in plan.splitlines() if "Index Cond" in line]
            if "Seq Scan" in plan or not any(column in line for line in cond):
                problems.append(f"{name}: {' | '.join(l.strip() for l in plan.splitlines())}")
        await raw.execute("RESET enable_seqscan")
    expect(not problems, "; ".join(problems))


@check("7")
async def rows_inserted_by_plain_sql_are_found_with_the_models_types(ctx):
    tag = uuid.uuid4().hex[:12]
    inserts = [
        (Organization, "INSERT INTO organizations (name, slug) VALUES ('P', :tag) RETURNING id"),
        (User, "INSERT INTO users (email, password_hash) VALUES (:tag, 'h') RETURNING id"),
    ]
    later = [
        (UserProfile, "INSERT INTO user_profiles (user_id) VALUES (:user) RETURNING id"),
        (UserSession, "INSERT INTO user_sessions (user_id, access_token_jti, ip_address, expires_at) VALUES (:user, :tag, '192.0.2.1', :at) RETURNING id"),
        (MFAMethod, "INSERT INTO mfa_methods (user_id, method_type) VALUES (:user, 'totp') RETURNING id"),
        (EmailVerification, "INSERT INTO email_verifications (user_id, email, token_hash, expires_at) VALUES (:user, 'e', :tag, :at) RETURNING id"),
        (PasswordReset, "INSERT INTO password_resets (user_id, token_hash, email, expires_at) VALUES (:user, :tag, 'e', :at) RETURNING id"),
        (UserActivityLog, "INSERT INTO user_activity_logs (user_id, action) VALUES (:user, 'sql') RETURNING id"),
        (UserPreference, "INSERT INTO user_preferences (user_id, category, key) VALUES (:user, 'c', :tag) RETURNING id"),
    ]
    challenge = (MFAChallenge, "INSERT INTO mfa_challenges (user_id, mfa_method_id, challenge_type, destination, code_hash, expires_at) VALUES (:user, :method, 'totp', 'd', 'c', :at) RETURNING id")
    at = utcnow() + timedelta(hours=1)
    ids = {}

    def as_uuid(value):
        if isinstance(value, uuid.UUID):
            return value
        expect(isinstance(value, str) and len(value) == 32 and all(ch in "0123456789abcdef" for ch in value), f"generated id {value!r} is not 32 lowercase hex digits")
        return uuid.UUID(value)

    async with ctx.sessions() as s:
        if ctx.postgres:
            # A writer whose session is not in UTC: the defaults must still be naive UTC.
            await s.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        user_param = None
        for model, sql in inserts + later + [challenge]:
            params = {"tag": f"{tag}-{model.__tablename__}", "at": at}
            if user_param is not None:
                params["user"] = user_param
            if model is MFAChallenge:
                params["method"] = ids[MFAMethod] if ctx.postgres else ids[MFAMethod].hex
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            returned = (await s.execute(text(sql), used)).scalar_one()
            ids[model] = as_uuid(returned)
            if model is User:
                user_param = ids[User] if ctx.postgres else ids[User].hex
        await s.commit()
    now = utcnow()
    async with ctx.sessions() as s:
        for model, id_ in ids.items():
            loaded = await s.get(model, id_)
            expect(loaded is not None, f"{model.__tablename__}: a row inserted by SQL is not found by its id {id_}")
            for c in columns(model):
                value = getattr(loaded, c.name)
                if value is None:
                    continue
                ty = c.type
                kind = (
                    uuid.UUID if isinstance(ty, UUID) else datetime if isinstance(ty, DateTime)
                    else bool if isinstance(ty, Boolean) else int if isinstance(ty, Integer)
                    else (dict, list) if isinstance(ty, JSON) else str
                )
                expect(isinstance(value, kind) and not (kind is int and isinstance(value, bool)), f"{model.__tablename__}.{c.name} = {value!r}, not {kind}")
                if c.name == "created_at":
                    expect(value.tzinfo is None and now - timedelta(minutes=5) < value <= now + timedelta(seconds=1), f"{model.__tablename__}.created_at {value} is not naive UTC now ({now})")
            # And by the same id as an equality lookup binds it.
            found = (await s.execute(select(model).where(model.id == id_))).scalar_one_or_none()
            expect(found is not None, f"{model.__tablename__}: not found by `id = :id`")


async def main(url):
    # Reflection meets SQLite's declared type names (UUID_TEXT...), which it does not know;
    # this suite reads their affinity itself.
    warnings.filterwarnings("ignore", message="Did not recognize type")
    ctx = Ctx(url)
    passed = failed = 0
    try:
        for name, fn in CHECKS:
            try:
                note = await fn(ctx)
                print(f"ok   {name}" + (f" ({note})" if note else ""))
                passed += 1
            except Failed as e:
                print(f"FAIL {name}: {e}")
                failed += 1
            except Exception as e:  # a database error is a failed check, with where it came from
                where = traceback.extract_tb(e.__traceback__)
                line = next((f"contract.py:{f.lineno}" for f in reversed(where) if f.filename.endswith("contract.py")), "")
                message = " ".join(str(e).split())
                print(f"FAIL {name}: {type(e).__name__} at {line}: {message[:600]}")
                failed += 1
    finally:
        await ctx.engine.dispose()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    url = os.environ.get("IDENTITY_CONTRACT_URL")
    if not url:
        print("contract.py: set IDENTITY_CONTRACT_URL to the database's SQLAlchemy URL", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(url)))
