"""``ordersync users``: the web app's accounts (web/accounts.py). Passwords are prompted for, never taken
from the command line (where ``ps`` and shell histories would keep them); every change is audited."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ordersync.runtime.settings import Settings

if TYPE_CHECKING:
    import psycopg


def _with_database(work: Callable[[psycopg.Connection[Any]], None]) -> None:
    import psycopg

    from ordersync.sinks.migrate import migrate
    from ordersync.web import accounts

    settings = Settings.from_env()
    migrate(settings.database_url)
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            work(conn)
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _new_password() -> str:
    from ordersync.web import accounts

    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    accounts.check_new_password(password)
    return password


@click.group("users")
def users() -> None:
    """The web app's accounts, in PostgreSQL (docs/security.md)."""


@users.command("add")
@click.argument("name")
@click.option("--lists", default=None, help="The contact lists the account sees, comma-separated (default: all).")
@click.option("--admin", is_flag=True, help="May read the audit trail.")
def users_add(name: str, lists: str | None, admin: bool) -> None:
    """Add an account; its password is prompted for."""

    def add(conn: psycopg.Connection[Any]) -> None:
        from ordersync.runtime import audit
        from ordersync.web import accounts
        from ordersync.web.auth import parse_lists

        scope = parse_lists(lists)
        accounts.add_user(conn, name, _new_password(), scope, admin, dt.datetime.now(dt.UTC))
        audit.record(conn, "cli", audit.USER_ADDED, user=name, lists=list(scope) if scope else "all", admin=admin)
        click.echo(f"added {name}")

    _with_database(add)


@users.command("list")
def users_list() -> None:
    """Every account: name, lists, role, when its password last changed."""

    def show(conn: psycopg.Connection[Any]) -> None:
        from ordersync.web import accounts

        rows = accounts.list_users(conn)
        if not rows:
            click.echo("no accounts (the web app takes ORDERSYNC_WEB_USER, or serves loopback only)")
        for row in rows:
            scope = ",".join(row.lists) if row.lists else "all lists"
            role = "admin" if row.admin else "marketer"
            click.echo(f"{row.name}\t{scope}\t{role}\tpassword set {row.password_changed_at:%Y-%m-%d %H:%M} UTC")

    _with_database(show)


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove an account; its sessions end at once."""

    def remove(conn: psycopg.Connection[Any]) -> None:
        from ordersync.runtime import audit
        from ordersync.web import accounts

        accounts.remove_user(conn, name)
        audit.record(conn, "cli", audit.USER_REMOVED, user=name)
        click.echo(f"removed {name}")

    _with_database(remove)


@users.command("set-password")
@click.argument("name")
def users_set_password(name: str) -> None:
    """Set an account's password (prompted); its sessions end."""

    def change(conn: psycopg.Connection[Any]) -> None:
        from ordersync.runtime import audit
        from ordersync.web import accounts

        accounts.set_password(conn, name, _new_password(), dt.datetime.now(dt.UTC))
        audit.record(conn, "cli", audit.PASSWORD_CHANGED, user=name)
        click.echo(f"password of {name} changed; its sessions have ended")

    _with_database(change)
