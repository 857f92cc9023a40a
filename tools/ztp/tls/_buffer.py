"""Cursor buffer for TLS wire structures (RFC 8446 §3 presentation language).

``pull_x`` reads advance the cursor only on success: a read that fails raises ``DecodeError``
and leaves the cursor where it was. Variable-length vectors ``<floor..ceiling>`` are read with
``pull_block``/``pull_opaque`` that fail unless the block is consumed exactly and its length is
within the vector's bounds. Writers reserve the length bytes and fill them in afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._alerts import DecodeError


class Buffer:
    """Read cursor over ``data`` or, when created empty, a growable write buffer."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytearray(data)
        self._pos = 0
        self._end = len(self._data)

    # -- reading ------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def pull_bytes(self, length: int) -> bytes:
        if length < 0 or self._pos + length > self._end:
            raise DecodeError(f"truncated: needed {length} bytes, {self._end - self._pos} left")
        value = bytes(self._data[self._pos : self._pos + length])
        self._pos += length
        return value

    def pull_uint8(self) -> int:
        return self.pull_bytes(1)[0]

    def pull_uint16(self) -> int:
        return int.from_bytes(self.pull_bytes(2), "big")

    def pull_uint24(self) -> int:
        return int.from_bytes(self.pull_bytes(3), "big")

    def pull_uint32(self) -> int:
        return int.from_bytes(self.pull_bytes(4), "big")

    @contextmanager
    def pull_block(
        self, length_size: int, floor: int = 0, ceiling: int | None = None
    ) -> Iterator[int]:
        """Read a ``length_size``-byte length, then let the caller consume exactly that much.

        Raises:
            DecodeError: the length is outside ``floor..ceiling``, runs past the enclosing
                block, or the caller consumed more or fewer bytes than announced.
        """
        start = self._pos
        length = int.from_bytes(self.pull_bytes(length_size), "big")
        if ceiling is None:
            ceiling = (1 << (8 * length_size)) - 1
        if not floor <= length <= ceiling:
            self._pos = start
            raise DecodeError(f"vector length {length} outside <{floor}..{ceiling}>")
        if self._pos + length > self._end:
            left = self._end - self._pos
            self._pos = start
            raise DecodeError(f"truncated: block of {length} bytes, {left} left")
        outer_end = self._end
        block_end = self._pos + length
        self._end = block_end
        try:
            yield length
            if self._pos != block_end:
                raise DecodeError(f"{block_end - self._pos} trailing bytes in a block")
        finally:
            self._end = outer_end
        self._pos = block_end

    def pull_opaque(self, length_size: int, floor: int = 0, ceiling: int | None = None) -> bytes:
        with self.pull_block(length_size, floor, ceiling) as length:
            return self.pull_bytes(length)

    # -- writing ------------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        return bytes(self._data[: self._end])

    def push_bytes(self, value: bytes) -> None:
        self._data[self._end : self._end] = value
        self._end += len(value)

    def push_uint8(self, value: int) -> None:
        self.push_bytes(value.to_bytes(1, "big"))

    def push_uint16(self, value: int) -> None:
        self.push_bytes(value.to_bytes(2, "big"))

    def push_uint24(self, value: int) -> None:
        self.push_bytes(value.to_bytes(3, "big"))

    def push_uint32(self, value: int) -> None:
        self.push_bytes(value.to_bytes(4, "big"))

    @contextmanager
    def push_block(self, length_size: int) -> Iterator[None]:
        """Reserve a length field, let the caller write the block, then patch the length."""
        start = self._end
        self.push_bytes(bytes(length_size))
        yield
        length = self._end - start - length_size
        if length >= 1 << (8 * length_size):
            raise ValueError(f"block of {length} bytes does not fit a {length_size}-byte length")
        self._data[start : start + length_size] = length.to_bytes(length_size, "big")

    def push_opaque(self, length_size: int, value: bytes) -> None:
        with self.push_block(length_size):
            self.push_bytes(value)
