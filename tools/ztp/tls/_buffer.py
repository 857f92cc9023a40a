"""Cursor buffer for TLS wire structures (RFC 8446 §3 presentation language).

``pull_x`` reads advance the cursor only on success: a read that fails raises ``DecodeError``
and leaves the cursor where it was. Variable-length vectors ``<floor..ceiling>`` are read with
``pull_block``/``pull_opaque`` that fail unless the block is consumed exactly and its length is
within the vector's bounds. Writers reserve the length bytes and fill them in afterwards.
"""

from __future__ import annotations

from ._alerts import DecodeError


class Buffer:
    """Read cursor over ``data`` or, when created empty, a growable write buffer.

    A reader keeps ``data`` as immutable ``bytes``, so each pull is one slice (one copy); a
    writer appends to a ``bytearray``. The reads are written out for the 1- and 2-byte fields
    the handshake is made of, not built on ``int.from_bytes`` of a slice: ClientHello parsing
    does ~100 of them per handshake, and the server's CPU per handshake is a goal (issue 14).
    """

    __slots__ = ("_data", "_pos", "_end")

    def __init__(self, data: bytes = b"") -> None:
        self._data: bytes | bytearray = bytes(data) if data else bytearray()
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

    def _truncated(self, needed: int) -> DecodeError:
        return DecodeError(f"truncated: needed {needed} bytes, {self._end - self._pos} left")

    def pull_bytes(self, length: int) -> bytes:
        pos = self._pos
        if length < 0 or pos + length > self._end:
            raise self._truncated(length)
        self._pos = pos + length
        return bytes(self._data[pos : pos + length])

    def pull_uint8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise self._truncated(1)
        self._pos = pos + 1
        return self._data[pos]

    def pull_uint16(self) -> int:
        pos = self._pos
        if pos + 2 > self._end:
            raise self._truncated(2)
        self._pos = pos + 2
        data = self._data
        return data[pos] << 8 | data[pos + 1]

    def pull_uint24(self) -> int:
        pos = self._pos
        if pos + 3 > self._end:
            raise self._truncated(3)
        self._pos = pos + 3
        data = self._data
        return data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]

    def pull_uint32(self) -> int:
        pos = self._pos
        if pos + 4 > self._end:
            raise self._truncated(4)
        self._pos = pos + 4
        return int.from_bytes(self._data[pos : pos + 4], "big")

    def _pull_length(self, length_size: int, floor: int, ceiling: int | None) -> int:
        """Read a vector's length and check it (bounds, room left); the cursor moves past the
        length field only when every check passed."""
        pos = self._pos
        start = pos + length_size
        if start > self._end:
            raise self._truncated(length_size)
        data = self._data
        if length_size == 1:
            length = data[pos]
        elif length_size == 2:
            length = data[pos] << 8 | data[pos + 1]
        else:
            length = int.from_bytes(data[pos:start], "big")
        if ceiling is None:
            ceiling = (1 << (8 * length_size)) - 1
        if not floor <= length <= ceiling:
            raise DecodeError(f"vector length {length} outside <{floor}..{ceiling}>")
        if start + length > self._end:
            raise DecodeError(f"truncated: block of {length} bytes, {self._end - start} left")
        self._pos = start
        return length

    def pull_block(self, length_size: int, floor: int = 0, ceiling: int | None = None) -> _Block:
        """Read a ``length_size``-byte length, then let the caller consume exactly that much
        (``with buf.pull_block(2) as length: ...``).

        Raises:
            DecodeError: the length is outside ``floor..ceiling``, runs past the enclosing
                block, or the caller consumed more or fewer bytes than announced.
        """
        length = self._pull_length(length_size, floor, ceiling)
        block = _Block(self, length)
        self._end = self._pos + length
        return block

    def pull_opaque(self, length_size: int, floor: int = 0, ceiling: int | None = None) -> bytes:
        """Read a ``length_size``-byte length and that many bytes (a vector of opaque).

        Raises:
            DecodeError: the length is outside ``floor..ceiling`` or runs past the block.
        """
        if length_size > 2:
            length = self._pull_length(length_size, floor, ceiling)
            pos = self._pos
            self._pos = pos + length
            return bytes(self._data[pos : pos + length])
        # 1- and 2-byte lengths (every opaque of the handshake but 3-byte ones): the checks of
        # _pull_length written out, one call less for ~15 vectors per ClientHello (issue 14)
        pos = self._pos
        start = pos + length_size
        if start > self._end:
            raise self._truncated(length_size)
        data = self._data
        length = data[pos] if length_size == 1 else data[pos] << 8 | data[pos + 1]
        if ceiling is None:
            ceiling = 0xFF if length_size == 1 else 0xFFFF
        if not floor <= length <= ceiling:
            raise DecodeError(f"vector length {length} outside <{floor}..{ceiling}>")
        end = start + length
        if end > self._end:
            raise DecodeError(f"truncated: block of {length} bytes, {self._end - start} left")
        self._pos = end
        return bytes(data[start:end])

    def unread(self) -> tuple[bytes, int, int]:
        """``(data, position, end)``: for a reader that walks the bytes with indices itself
        (``pull_client_hello``: one function instead of a pull per field, issue 14) and then
        moves the cursor with ``skip_to``. ``data[position:end]`` is what is left to read;
        ``data`` is bytes (a writer's bytearray is copied), so its slices are bytes too."""
        data = self._data
        if type(data) is not bytes:
            data = bytes(data)
        return data, self._pos, self._end

    def skip_to(self, position: int) -> None:
        """Move the read cursor to ``position`` (after an ``unread`` walk): forward only, and
        not past the end."""
        if not self._pos <= position <= self._end:
            raise ValueError(f"position {position} outside {self._pos}..{self._end}")
        self._pos = position

    # -- writing ------------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        return bytes(self._data[: self._end])

    def push_bytes(self, value: bytes) -> None:
        self._data += value  # type: ignore[operator]  # a writer's data ends at _end
        self._end += len(value)

    def push_uint8(self, value: int) -> None:
        self._data.append(value)  # type: ignore[union-attr]  # ValueError unless 0..255
        self._end += 1

    def push_uint16(self, value: int) -> None:
        self._data += value.to_bytes(2, "big")  # type: ignore[operator]
        self._end += 2

    def push_uint24(self, value: int) -> None:
        self.push_bytes(value.to_bytes(3, "big"))

    def push_uint32(self, value: int) -> None:
        self.push_bytes(value.to_bytes(4, "big"))

    def push_block(self, length_size: int) -> _PushBlock:
        """Reserve a length field, let the caller write the block, then patch the length
        (``with buf.push_block(2): ...``)."""
        return _PushBlock(self, length_size)

    def push_opaque(self, length_size: int, value: bytes) -> None:
        n = len(value)
        if n >= 1 << (8 * length_size):
            raise ValueError(f"block of {n} bytes does not fit a {length_size}-byte length")
        self.push_bytes(n.to_bytes(length_size, "big") + value)


# Context managers as small classes, not @contextmanager generators: ClientHello parsing
# enters dozens of blocks per handshake, and a generator-based one costs several times more.


class _Block:
    """``pull_block``'s context: the buffer ends at the block's end until exit; on a clean
    exit the block must have been consumed exactly."""

    __slots__ = ("_buf", "_outer_end", "_block_end", "_length")

    def __init__(self, buf: Buffer, length: int) -> None:
        self._buf = buf
        self._outer_end = buf._end
        self._block_end = buf._pos + length
        self._length = length

    def __enter__(self) -> int:
        return self._length

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        buf = self._buf
        buf._end = self._outer_end
        if exc_type is None:
            if buf._pos != self._block_end:
                raise DecodeError(f"{self._block_end - buf._pos} trailing bytes in a block")
            buf._pos = self._block_end


class _PushBlock:
    """``push_block``'s context: reserves the length on entry, patches it on a clean exit."""

    __slots__ = ("_buf", "_size", "_start")

    def __init__(self, buf: Buffer, length_size: int) -> None:
        self._buf = buf
        self._size = length_size
        self._start = 0

    def __enter__(self) -> None:
        self._start = self._buf._end
        self._buf.push_bytes(bytes(self._size))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            return
        buf, size, start = self._buf, self._size, self._start
        length = buf._end - start - size
        if length >= 1 << (8 * size):
            raise ValueError(f"block of {length} bytes does not fit a {size}-byte length")
        buf._data[start : start + size] = length.to_bytes(size, "big")  # type: ignore[index]
