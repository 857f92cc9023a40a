"""SAMD21 feature check: the firmware may use only what MicroPython's BASIC feature level has.

AST-based, so it sees through formatting: f-strings, imports of modules the SAMD21 build
lacks, str methods it leaves out, `startswith` with a tuple, `machine` outside lib/board.py,
recursion (a function calling itself by name), async code, `micropython.const(...)`.
"""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN_MODULES = {
    "hashlib", "errno", "select", "asyncio", "uasyncio", "enum", "dataclasses", "typing",
    "binascii", "ubinascii", "re", "random", "abc", "functools", "itertools", "threading",
    "socket", "ssl", "logging", "__future__",
}
FORBIDDEN_METHODS = {"partition", "rpartition", "splitlines", "center", "casefold",
                     "expandtabs", "zfill", "removeprefix", "removesuffix"}


def check_source(src: str, filename: str) -> list[str]:
    """Return the violations in one file (empty = fine), each "file:line: message"."""
    tree = ast.parse(src, filename)
    out: list[str] = []
    is_board = Path(filename).name == "board.py"

    def bad(node: ast.AST, msg: str) -> None:
        out.append(f"{filename}:{getattr(node, 'lineno', 0)}: {msg}")

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            bad(node, "f-string (not in the SAMD21 build)")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for n in names:
                root = n.split(".")[0]
                if root in FORBIDDEN_MODULES:
                    bad(node, f"import {n} (not in the SAMD21 build)")
                if root == "machine" and not is_board:
                    bad(node, "import machine outside lib/board.py")
                if isinstance(node, ast.ImportFrom) and root == "collections":
                    if any(a.name in ("deque", "OrderedDict") for a in node.names):
                        bad(node, "collections.deque/OrderedDict (not in the SAMD21 build)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in FORBIDDEN_METHODS:
                bad(node, f".{attr}() (not in the SAMD21 build)")
            if attr in ("startswith", "endswith") and node.args and isinstance(
                    node.args[0], ast.Tuple):
                bad(node, f"{attr}() with a tuple")
            if (attr == "const" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "micropython"):
                bad(node, "micropython.const(): write bare const() so it is optimised")
        elif isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            bad(node, "async code (no asyncio on the SAMD21 build)")
    # recursion: a module-level function calling itself by name, a method via self.name()
    for top in tree.body:
        funcs = [(top, False)] if isinstance(top, ast.FunctionDef) else []
        if isinstance(top, ast.ClassDef):
            funcs = [(f, True) for f in top.body if isinstance(f, ast.FunctionDef)]
        for fn, method in funcs:
            for sub in ast.walk(fn):
                if not isinstance(sub, ast.Call):
                    continue
                f = sub.func
                if not method and isinstance(f, ast.Name) and f.id == fn.name:
                    bad(sub, f"recursion in {fn.name}()")
                if (method and isinstance(f, ast.Attribute) and f.attr == fn.name
                        and isinstance(f.value, ast.Name) and f.value.id == "self"):
                    bad(sub, f"recursion in {fn.name}()")
    return out


def check_files(paths: list[Path]) -> list[str]:
    out: list[str] = []
    for p in paths:
        out.extend(check_source(p.read_text(), str(p)))
    return out
