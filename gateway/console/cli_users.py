"""`coalition user create EMAIL --role ROLE` (the password on stdin), `coalition user
totp-reset EMAIL` (for a user who lost their authenticator), and the demo's users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

import asyncpg

from gateway.console import audit, totp, users
from gateway.tokens import Role
from infra import db
from infra.settings import Settings

DEMO_PASSWORD = "coalition-demo"  # noqa: S105 (printed by `make run`: a demo, not a secret)
DEMO_USERS = (("admin@demo.coalition", Role.ADMIN), ("finance@demo.coalition", Role.FINANCE))
CLI_ACTOR = "cli"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="console users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser(
        "create", help="create a console user; the password is read from stdin"
    )
    create.add_argument("email")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.set_defaults(handler=_cmd_create)
    reset = user_sub.add_parser(
        "totp-reset", help="turn off a user's TOTP (they enrol again at the next sign-in)"
    )
    reset.add_argument("email")
    reset.set_defaults(handler=_cmd_totp_reset)


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


async def _create(dsn: str, email: str, role: Role, password: str) -> users.ConsoleUser:
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        async with conn.transaction():
            user = await users.create_user(conn, email, role, password, created_by=CLI_ACTOR)
            await audit.record(
                conn, CLI_ACTOR, "user.create", f"user:{user.email}", after={"role": role.value}
            )
            return user
    finally:
        await conn.close()


def _cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: gateway.cli imports this module to build its parser.
    from gateway import cli

    password = _read_password()
    dsn, server = cli._database(settings)
    try:
        asyncio.run(cli._migrate(dsn))
        # A refusal is a DomainError: gateway.cli's main prints it as one line.
        user = asyncio.run(_create(dsn, args.email, Role(args.role), password))
    finally:
        if server is not None:
            server.stop()
    print(f"console user {user.email} created with the role {user.role.value}")
    return 0


async def totp_reset(dsn: str, email: str) -> bool:
    """Forget the user's TOTP secret, audited; False when the user had none."""
    email = users.normalize_email(email)
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        async with conn.transaction():
            user_id = await totp.user_id_of(conn, email)
            if user_id is None:
                raise users.UserInvalid(f"there is no console user {email}")
            if not await totp.disable(conn, user_id):
                return False
            await audit.record(
                conn,
                CLI_ACTOR,
                "totp.reset",
                f"user:{email}",
                before={"totp": "on"},
                after={"totp": "off"},
            )
            return True
    finally:
        await conn.close()


def _cmd_totp_reset(args: argparse.Namespace, settings: Settings) -> int:
    from gateway import cli

    dsn, server = cli._database(settings)
    try:
        asyncio.run(cli._migrate(dsn))
        was_on = asyncio.run(totp_reset(dsn, args.email))
    finally:
        if server is not None:
            server.stop()
    print(f"TOTP {'reset' if was_on else 'was not set up'} for {args.email}")
    return 0


async def seed_demo(dsn: str) -> str:
    """The demo's console users (once); the lines `make run` prints about signing in."""
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        for email, role in DEMO_USERS:
            try:
                async with conn.transaction():
                    await users.create_user(
                        conn, email, role, DEMO_PASSWORD, created_by="demo-seed"
                    )
            except users.UserInvalid:
                pass  # seeded by an earlier run
    finally:
        await conn.close()
    logins = "  ".join(f"{email} ({role.value})" for email, role in DEMO_USERS)
    return f"{logins}, password {DEMO_PASSWORD}"
