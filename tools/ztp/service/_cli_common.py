"""What the operator commands share: the saved session (``ztp login``), an authenticated
HTTP client of the service, and output as a table or JSON.

Used by ``cli.py`` and ``_rotation_cli.py``; a module of its own so that both import it and
neither imports the other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "DEFAULT_URL",
    "json_option",
    "load_session",
    "operator_client",
    "print_json",
    "print_table",
    "read_credentials_json",
    "save_session",
    "session_file",
    "url_option",
    "utc_text",
    "wall_clock_ms",
    "wide_option",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:8080"


def session_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(os.environ.get("ZTP_SESSION_FILE") or Path(base) / "ztp" / "session.json")


def load_session() -> dict[str, Any]:
    path = session_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if os.environ.get("ZTP_URL"):
        data["url"] = os.environ["ZTP_URL"]
    if os.environ.get("ZTP_TOKEN"):
        data["token"] = os.environ["ZTP_TOKEN"]
        data.pop("expires_ms", None)  # a token from the environment: its owner renews it
        data.pop("credentials_file", None)
    return data


def save_session(data: dict[str, Any]) -> Path:
    """Write the session (token, URL; never a client secret) with mode 0600."""
    path = session_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return path


def wall_clock_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


# A token this close to its expiry is renewed (or reported expired) before it is used.
_RENEW_MARGIN_MS = 60_000


def read_credentials_json(path: Path) -> tuple[str, str]:
    """(admin id, admin secret) from ``ztp serve``'s credentials.json.

    Raises:
        click.ClickException: unreadable or not that file's shape (the secret is not shown).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read credentials file {path}: "
                                   f"{getattr(exc, 'strerror', None) or 'not JSON'}") from None
    cid, secret = (data.get("admin_id"), data.get("admin_secret")) if isinstance(data, dict) \
        else (None, None)
    if not isinstance(cid, str) or not isinstance(secret, str) or not cid or not secret:
        raise click.ClickException(f"{path}: expected admin_id and admin_secret "
                                   "(the credentials.json of `ztp serve`)")
    return cid, secret


def _renew(session: dict[str, Any], base: str) -> str:
    """A fresh token for an expired session: logs in again from the credentials file the
    session was made with (`ztp login --credentials`), else tells the user to log in."""
    from ._client import ServiceClient, ServiceClientError

    cred_file = session.get("credentials_file")
    if not cred_file:
        raise click.ClickException("the session's token has expired: run `ztp login` again")
    cid, secret = read_credentials_json(Path(cred_file))
    client = ServiceClient(base)
    try:
        token = client.login(cid, secret, session.get("scope"))
    except ServiceClientError as exc:
        raise click.ClickException(f"renewing the token failed: {exc}") from None
    finally:
        client.close()
    session.update(token=token, expires_ms=wall_clock_ms() + 1000 * client.expires_in
                   if client.expires_in else None)
    save_session(session)
    return token


@contextmanager
def operator_client(url: str | None) -> Iterator[Any]:
    from ._client import ServiceClient, ServiceClientError

    session = load_session()
    base = url or session.get("url") or DEFAULT_URL
    token = session.get("token")
    if not token:
        raise click.ClickException("not logged in: run `ztp login` (or set ZTP_TOKEN)")
    expires_ms = session.get("expires_ms")
    if isinstance(expires_ms, int) and wall_clock_ms() + _RENEW_MARGIN_MS >= expires_ms:
        token = _renew(session, base)
    client = ServiceClient(base, token)
    try:
        yield client
    except ServiceClientError as exc:
        hint = " (token expired or revoked: run `ztp login`)" if exc.status == 401 else ""
        raise click.ClickException(f"service refused: {exc}{hint}") from None
    except Exception as exc:  # httpx transport errors: say where we tried
        import httpx

        if isinstance(exc, httpx.HTTPError):
            raise click.ClickException(f"cannot reach {base}: {exc}") from None
        raise
    finally:
        client.close()


def url_option(fn: F) -> F:
    return click.option("--url", default=None, help="service URL (default: from `ztp login`)")(
        fn
    )


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(fn)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def wide_option(fn: F) -> F:
    return click.option("--wide", is_flag=True,
                        help="print the table at its natural width (no wrapping)")(fn)


def print_table(title: str, columns: list[str], rows: list[list[Any]], *,
           keys: tuple[str, ...] = (), below: tuple[str, ...] = (), wide: bool = False) -> None:
    """Print a plain-text table at the terminal's width (``$COLUMNS``, else 80).

    The ``keys`` columns (identifiers an operator copies: ICCID, action, ids, times) are never
    cut or wrapped. When the table is too wide, the ``below`` columns (long free text such as
    an audit detail) move to an indented line under their row, and the other columns wrap
    within their share of the width. A column empty in every row is left out. ``wide``: one
    line per row at the natural width (for a pager or ``less -S``); ``--json`` has it all.
    """
    import shutil
    import textwrap

    cells = [["" if v is None else str(v).replace("\n", " ") for v in row] for row in rows]
    if not wide and cells:
        keep = [i for i, col in enumerate(columns) if col in keys or any(r[i] for r in cells)]
        columns = [columns[i] for i in keep]
        cells = [[r[i] for i in keep] for r in cells]
    width = shutil.get_terminal_size((80, 24)).columns
    natural = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]

    def span(idx: list[int]) -> int:
        return sum(natural[i] for i in idx) + 2 * (len(idx) - 1)

    shown = list(range(len(columns)))
    under: list[int] = []
    if not wide and span(shown) > width:
        under = [i for i in shown if columns[i] in below]
        shown = [i for i in shown if i not in under]
    widths = {i: natural[i] for i in shown}
    if not wide and span(shown) > width:  # share what the keys leave among the others
        free = [i for i in shown if columns[i] not in keys]
        room = width - sum(natural[i] for i in shown if i not in free) - 2 * (len(shown) - 1)
        for n, i in enumerate(sorted(free, key=lambda i: natural[i])):
            share = max(4, room // (len(free) - n))
            widths[i] = min(natural[i], share)
            room -= widths[i]
    out = [title, ""]

    def emit(values: list[str]) -> None:
        parts = [[v] if columns[i] in keys or wide else
                 textwrap.wrap(v, widths[i], break_on_hyphens=False) or [""]
                 for i, v in zip(shown, values, strict=True)]
        for k in range(max(len(p) for p in parts)):
            out.append("  ".join((p[k] if k < len(p) else "").ljust(widths[i])
                                 for i, p in zip(shown, parts, strict=True)).rstrip())

    emit([columns[i] for i in shown])
    out.append("  ".join("-" * widths[i] for i in shown))
    for row in cells:
        emit([row[i] for i in shown])
        extra = "  ".join(f"{columns[i]}: {row[i]}" for i in under if row[i])
        if extra:
            out.extend(textwrap.wrap(extra, max(20, width - 4), initial_indent="    ",
                                     subsequent_indent="    ", break_on_hyphens=False))
    click.echo("\n".join(out))


def utc_text(ms: int | None) -> str:
    """Epoch milliseconds as the tables show time: UTC, to the second."""
    import datetime as dt

    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
