"""``ztp users add|disable|enable|passwd|list``: operator accounts of the console (issue 18,
docs/console.md). They work on the data directory's database directly, like ``ztp service
create-admin`` (on the service host, as its user): no account exists yet to ask the service.

Passwords are read from the terminal (twice, not echoed) or, with ``--password-stdin``, as
one line of standard input (scripts); never from the command line, where ``ps`` and the
shell history would show them. Each change is audited (``user.add``, ``user.disable``,
``user.enable``, ``user.passwd``) with the local account that ran it as the actor.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="data directory (default $ZTP_DATA_DIR or ~/.local/share/ztp)")(fn)


def _password_option(fn: F) -> F:
    return click.option("--password-stdin", is_flag=True,
                        help="read the password as one line of standard input")(fn)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


def _run(data_dir: Path | None, action: str, username: str,
         fn: Callable[[Any, Any, int], T], detail: dict[str, Any] | None = None) -> T:
    """``fn(session, hasher, now_ms)`` in one write transaction with its audit record."""
    from ._audit import Actor
    from ._db import Database, migrate
    from ._errors import ServiceError
    from ._keys import MasterKeyError, SecretHasher
    from ._settings import Settings
    from ._store import Store

    try:
        settings = Settings.from_env(data_dir)
    except (MasterKeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    db = Database(settings.database_url)
    try:
        migrate(db)
        now_ms = settings.clock_ms()
        with db.write() as session:
            out = fn(session, SecretHasher(fast=settings.fast_hashing), now_ms)
            if action:
                Store(session, settings.master_key, now_ms).audit.record(
                    Actor(f"local:{getpass.getuser()}"[:64]), action,
                    detail={"user": username, **(detail or {})})
            return out
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        db.dispose()


@click.group("users")
def users_group() -> None:
    """Operator accounts of the web console (/console)."""


@users_group.command("add")
@_data_dir_option
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True,
              help="admin: everything; operator: change SIMs and configurations; "
                   "viewer: read only")
@_password_option
def users_add(data_dir: Path | None, username: str, role: str, password_stdin: bool) -> None:
    """Create an account (password: 12-256 characters)."""
    from ._console import create_user

    password = _read_password(password_stdin)
    _run(data_dir, "user.add", username,
         lambda s, h, now: create_user(s, h, username, role, password, now), {"role": role})
    click.echo(f"user {username} ({role}) created")


@users_group.command("disable")
@_data_dir_option
@click.argument("username")
def users_disable(data_dir: Path | None, username: str) -> None:
    """Disable an account; every session it has ends at once."""
    from ._console import disable_user

    ended = _run(data_dir, "user.disable", username,
                 lambda s, h, now: disable_user(s, username, now))
    click.echo(f"user {username} disabled ({ended} session(s) ended)")


@users_group.command("enable")
@_data_dir_option
@click.argument("username")
def users_enable(data_dir: Path | None, username: str) -> None:
    """Enable a disabled account again."""
    from ._console import enable_user

    _run(data_dir, "user.enable", username, lambda s, h, now: enable_user(s, username, now))
    click.echo(f"user {username} enabled")


@users_group.command("passwd")
@_data_dir_option
@click.argument("username")
@_password_option
def users_passwd(data_dir: Path | None, username: str, password_stdin: bool) -> None:
    """Set a new password; every session of the account ends."""
    from ._console import set_password

    password = _read_password(password_stdin)
    ended = _run(data_dir, "user.passwd", username,
                 lambda s, h, now: set_password(s, h, username, password, now))
    click.echo(f"password of {username} changed ({ended} session(s) ended)")


@users_group.command("list")
@_data_dir_option
def users_list(data_dir: Path | None) -> None:
    """The accounts, their roles and whether they are disabled."""
    from ._console import list_users

    users = _run(data_dir, "", "", lambda s, h, now: list_users(s))
    for u in users:
        click.echo(f"{u['username']:<24} {u['role']:<9} "
                   f"{'disabled' if u['disabled'] else 'active'}")
