"""V.250 command-line syntax for the AT interpreter: splitting a line into commands and
parsing their parameters, and the two ways a command handler fails.

ITU-T V.250 §5.3 (basic commands, ``E0``, ``&K3``), §5.4 (extended commands, ``+CMEE=2``,
``+CREG?``, ``+CREG=?``), §5.7.1 (ERROR). A handler raises ``CommandSyntaxError`` for a
malformed command (plain ERROR whatever +CMEE says) and ``CommandError(code)`` for a command
that is well formed but cannot be done (``+CME ERROR: <code>`` as +CMEE asks, 27.007 §9.1).
Parameter parsers raise the same two, so a handler just calls them.
"""

from __future__ import annotations

import re
from typing import Final

from ztp.modem._cme import CmeError

__all__ = [
    "CommandError",
    "CommandSyntaxError",
    "basic_flag",
    "int_arg",
    "int_field",
    "split_args",
    "split_commands",
]

_EXT_NAME: Final = re.compile(rb"\+[A-Z0-9!%\-./:_]+")
_BASIC: Final = re.compile(rb"(&[A-Z]|[A-Z])([0-9]*)")


class CommandSyntaxError(Exception):
    """A malformed command: plain ERROR whatever +CMEE says (V.250 §5.7.1)."""


class CommandError(Exception):
    """A well-formed command the MT cannot carry out: ``+CME ERROR: <code>``."""

    def __init__(self, code: CmeError) -> None:
        super().__init__(code)
        self.code = code


def basic_flag(args: bytes) -> bool:
    """The 0/1 argument of a basic command (``E``, ``V``); empty means 0."""
    if args in (b"", b"0"):
        return False
    if args == b"1":
        return True
    raise CommandSyntaxError()


def int_field(field_: bytes, lo: int, hi: int) -> int:
    """One decimal parameter: not digits is a syntax error, out of ``lo..hi`` is CME 4."""
    if not re.fullmatch(rb"[0-9]{1,7}", field_):
        raise CommandSyntaxError()
    value = int(field_)
    if not lo <= value <= hi:
        raise CommandError(CmeError.OPERATION_NOT_SUPPORTED)
    return value


def int_arg(args: bytes, lo: int, hi: int, *, default: int) -> int:
    """The single decimal parameter of a set command; empty gives ``default``."""
    if args == b"":
        return default
    fields = split_args(args)
    if len(fields) != 1:
        raise CommandSyntaxError()
    return int_field(fields[0], lo, hi)


def split_args(args: bytes) -> list[bytes]:
    """Split a parameter list at commas outside quotes."""
    fields, cur, quoted = [], bytearray(), False
    for b in args:
        if b == 0x22:
            quoted = not quoted
        if b == 0x2C and not quoted:
            fields.append(bytes(cur))
            cur.clear()
        else:
            cur.append(b)
    if quoted:
        raise CommandSyntaxError()
    fields.append(bytes(cur))
    return fields


def split_commands(body: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """Split the text after "AT" into (name, kind, args) (V.250 §5.3, §5.4).

    kind: b"" action, b"?" read, b"=?" test, b"=" set. Command names are case-insensitive;
    text inside quotes keeps its case.

    Raises:
        CommandSyntaxError: the line is not a V.250 command sequence.
    """
    commands: list[tuple[bytes, bytes, bytes]] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i:i + 1]
        if c == b" ":
            i += 1
            continue
        if c == b"+":
            m = _EXT_NAME.match(body.upper(), i)
            if m is None:
                raise CommandSyntaxError()
            name = m.group(0)
            i = m.end()
            # Parameters run to the next ';' outside quotes.
            j, quoted = i, False
            while j < n and (quoted or body[j] != 0x3B):
                if body[j] == 0x22:
                    quoted = not quoted
                j += 1
            if quoted:
                raise CommandSyntaxError()
            rest = body[i:j]
            i = j + 1 if j < n else j
            if rest == b"":
                commands.append((name, b"", b""))
            elif rest == b"?":
                commands.append((name, b"?", b""))
            elif rest == b"=?":
                commands.append((name, b"=?", b""))
            elif rest.startswith(b"="):
                commands.append((name, b"=", rest[1:]))
            else:
                raise CommandSyntaxError()
            continue
        m = _BASIC.match(body.upper(), i)
        if m is None:
            raise CommandSyntaxError()
        commands.append((m.group(1), b"", m.group(2)))
        i = m.end()
        if i < n and body[i] == 0x3B:
            i += 1
    return commands
