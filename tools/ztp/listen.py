"""The listen-address convention of every ``ztp`` command that opens a port, and the bound
socket they all make: one place, so ``ztp serve``, ``ztp gateway``, ``ztp service serve`` and
``ztp modem --tcp`` read addresses and fail on a taken port the same way."""

from __future__ import annotations

import socket

import click

__all__ = ["bind_listener", "parse_hostport"]


def parse_hostport(value: str, default_host: str = "127.0.0.1",
                   option: str | None = None) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``[v6]:PORT`` or a bare ``PORT`` (on ``default_host``) ->
    (host, port).

    Raises:
        click.BadParameter: no port, or a port outside 0-65535 (``option`` names the flag).
    """
    if value.isdigit():
        host, sep, port = "", ":", value
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT or PORT, got {value!r}",
                                 param_hint=option)
    return host.strip("[]") or default_host, int(port)


def bind_listener(host: str, port: int, what: str) -> socket.socket:
    """A bound TCP socket for ``what`` (named in the error), proto IPPROTO_TCP (asyncio sets
    TCP_NODELAY only on sockets whose proto says TCP) and SO_REUSEADDR.

    Raises:
        click.ClickException: the address is taken or not ours: one line, no traceback.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"{what}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
