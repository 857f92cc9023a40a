"""Line discipline of the virtual SARA-U201's AT interpreter: from UART bytes to command lines.

ITU-T V.250 §5.2.1 (command line prefix "AT", characters before it ignored), §6.2.1-§6.2.3
(S3 = CR ends a line, S5 = BS edits it); DS §2.2.5.1 (command pacing: a command sent sooner
than ``Habits.min_command_gap_ms`` after the last response is lost or refused). DS = u-blox
SARA-U2 AT commands manual (UBX-13002752).

Sans-I/O. ``receive(data, now_ms)`` buffers bytes with their arrival time; the AT core takes
them one at a time (``next_byte``) and hands each to ``consume``, which says whether to echo
it and whether a command line is complete (its text after "AT") or refused (too long, or too
early: answer ERROR). The core executes the line before it takes the next byte, so a line
runs with the responses of the previous one already counted for pacing.
"""

from __future__ import annotations

import logging
from typing import Final

from ztp.modem._habits import EarlyCommand, Habits

__all__ = ["BS", "CR", "LINE_REFUSED", "LineReader"]

log = logging.getLogger(__name__)

CR: Final = 0x0D  # S3, V.250 §6.2.1
BS: Final = 0x08  # S5, V.250 §6.2.3


class _LineRefused:
    def __repr__(self) -> str:
        return "LINE_REFUSED"


# ``consume`` outcome: the line ended but is answered ERROR (too long, or inside the gap).
LINE_REFUSED: Final = _LineRefused()


class LineReader:
    """Command lines out of a byte stream split anywhere, with pacing (sans-I/O).

    Args:
        habits: ``min_command_gap_ms`` and ``early_command`` (read at every byte, so a
            ``habits`` change applies at once).
        max_line: longest accepted line in characters after ``AT`` (longer: refused).
    """

    def __init__(self, habits: Habits, max_line: int) -> None:
        self.habits = habits
        self.max_line = max_line
        self._in = bytearray()
        # Arrival time of the buffered input: (absolute end offset of a chunk, its now_ms).
        self._in_marks: list[tuple[int, int]] = []
        self._in_total = 0  # bytes ever received
        self._in_done = 0  # bytes ever consumed (or dropped)
        self._line = bytearray()
        self.early_commands = 0  # lines refused for starting inside min_command_gap_ms
        self.reset()

    def reset(self) -> None:
        """Power-up: buffered input and the line being typed are lost."""
        self._in.clear()
        self._in_marks.clear()
        self._in_done = self._in_total
        self._line.clear()
        self._line_started = False  # "AT" seen
        self._line_overflow = False
        self._prefix_a = False  # last ignored char was 'A'
        self._a_ms: int | None = None  # arrival of the 'A' that may start a line
        self._line_early = False
        self._discarding = False  # dropping an early line up to its CR (EarlyCommand.IGNORE)

    def receive(self, data: bytes, now_ms: int) -> None:
        """Buffer bytes from the host received at ``now_ms``."""
        if data:
            self._in += data
            self._in_total += len(data)
            self._in_marks.append((self._in_total, now_ms))

    @property
    def has_input(self) -> bool:
        return bool(self._in)

    def next_byte(self) -> tuple[int, int]:
        """The oldest buffered byte and its arrival time in ms (call only with input)."""
        while self._in_marks[0][0] <= self._in_done:
            self._in_marks.pop(0)
        at_ms = self._in_marks[0][1]
        self._in_done += 1
        return self._in.pop(0), at_ms

    def consume(
        self, byte: int, at_ms: int, last_response_ms: int | None
    ) -> tuple[bool, bytes | _LineRefused | None]:
        """Take one byte that arrived at ``at_ms``.

        Args:
            last_response_ms: when the DTE last could see a response or URC (None: never).

        Returns:
            (echo, line): echo the byte if echo is on; ``line`` is the complete command line
            after "AT", ``LINE_REFUSED`` (answer ERROR), or None (no line ended).
        """
        if self._discarding:
            # An early line (EarlyCommand.IGNORE): lost up to and including its CR.
            if byte == CR:
                self._discarding = False
            return False, None
        if not self._line_started and byte in (0x41, 0x61):
            self._a_ms = at_ms
            if (self._early(at_ms, last_response_ms)
                    and self.habits.early_command is EarlyCommand.IGNORE):
                log.info("AT core: command %d ms after the last response, ignored",
                         at_ms - (last_response_ms or 0))
                self.early_commands += 1
                self._discarding = True
                self._prefix_a = False
                return False, None
        if not self._line_started:
            # V.250 §5.2.1: characters before "AT" are ignored.
            if byte in (0x54, 0x74) and self._prefix_a:
                self._line_started = True
                self._line.clear()
                self._line_overflow = False
                self._line_early = self._a_ms is not None and self._early(self._a_ms,
                                                                          last_response_ms)
            self._prefix_a = byte in (0x41, 0x61)
            return True, None
        if byte == CR:
            self._line_started = False
            self._prefix_a = False
            line = bytes(self._line)
            self._line.clear()
            if self._line_overflow:
                return True, LINE_REFUSED
            if self._line_early:
                # EarlyCommand.ERROR: DS §2.2.5.1 pacing not respected.
                log.info("AT core: command inside the %d ms gap, ERROR",
                         self.habits.min_command_gap_ms)
                self.early_commands += 1
                return True, LINE_REFUSED
            return True, line
        if byte == BS:
            if self._line:
                self._line.pop()
        elif len(self._line) >= self.max_line:
            self._line_overflow = True
        else:
            self._line.append(byte)
        return True, None

    def _early(self, at_ms: int, last_response_ms: int | None) -> bool:
        """A line starting at ``at_ms`` comes too soon after the last response (DS §2.2.5.1).

        Both ends count whole milliseconds on clocks of their own: a DTE that waited 20 ticks
        may have waited 19.x ms, which this clock can see as 19. So one tick is forgiven: with
        a 20 ms gap, 19 ms passes and 18 ms does not.
        """
        gap = self.habits.min_command_gap_ms
        return gap > 0 and last_response_ms is not None and at_ms - last_response_ms < gap - 1
