"""The card side of the SIM Toolkit session (ETSI TS 102 223 v15; TS 102 221 §10 CAT
commands): the proactive command the card presents with '91 xx', FETCH, TERMINAL RESPONSE,
the events ENVELOPEs bring, and the applet job (``_job.py``) they drive.

Nothing runs between APDUs: the job advances only when the terminal sends TERMINAL RESPONSE
(to the command it fetched) or an ENVELOPE (an event, when the job waits for one). Events that
arrive while a command is with the terminal wait in a bounded inbox ('93 00' when full).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from ztp import stk
from ztp.stk import CloseChannel, EventDownload, OpenChannel, TerminalResponse, TimerExpiration

from ._bip import WAIT
from ._job import Job

__all__ = ["ToolkitSession"]

log = logging.getLogger("ztp.sim")

_MAX_INBOX: Final = 8

_Presented = tuple[stk.ProactiveCommand, bytes, Job]  # command, its wire form, its job


class ToolkitSession:
    """Proactive commands of the running job, and the BIP channels the terminal has open.

    Args:
        on_outcome: called once the running job has an outcome (it may still be tearing
            down: close_notify, CLOSE CHANNEL come after).
    """

    def __init__(self, on_outcome: Callable[[Job], None]) -> None:
        self._on_outcome = on_outcome
        self.job: Job | None = None
        self.reset()

    def reset(self) -> None:
        """Card reset or terminal restart: the fetched command and the channels are gone."""
        self._job_started = False
        self._pending: _Presented | None = None
        self._outstanding: _Presented | None = None
        self._inbox: deque[EventDownload | TimerExpiration] = deque()
        self.bip_channels: set[int] = set()
        self._command_number = 0
        self._waiting = False  # the job waits for an ENVELOPE

    @property
    def proactive_pending(self) -> int:
        """Length of the proactive command the card would announce with 91xx, or 0."""
        if self._pending is None or self._outstanding is not None:
            return 0
        return len(self._pending[1])

    def open_channels(self) -> tuple[int, ...]:
        return tuple(sorted(self.bip_channels))

    # ---------------------------------------------------------------- job lifecycle

    def terminal_restart(self) -> None:
        """A new TERMINAL PROFILE without a card reset (modem reboot): the terminal's
        channels and the command it had fetched are gone."""
        self._outstanding = self._pending = None
        self.bip_channels.clear()

    def cancel(self) -> Job | None:
        """End the running job (if any; its unfetched command is withdrawn) and return it."""
        job, self.job = self.job, None
        if job is not None:
            job.cancel()
        self._inbox.clear()
        self._waiting = False
        self._pending = None
        return job

    def run(self, job: Job) -> None:
        """Make ``job`` the running one (after ``cancel`` of any other)."""
        assert self.job is None
        self.job = job
        self._job_started = False
        if self._outstanding is None:
            self._start_job()
        # else: the previous job's command is still with the terminal; start after its TR

    # ---------------------------------------------------------------- CAT commands

    def fetch(self, ne: int) -> tuple[bytes | None, int]:
        """FETCH with Le ``ne``: (command, 0) or (None, length to announce in '6C xx') or
        (None, 0) when there is nothing to fetch."""
        current = self._outstanding or self._pending
        if current is None:
            return None, 0
        wire = current[1]
        if ne != len(wire):
            return None, len(wire)
        if self._outstanding is None:
            self._outstanding, self._pending = self._pending, None
        return wire, 0

    def terminal_response(self, tr: TerminalResponse) -> bool:
        """A parsed TERMINAL RESPONSE; False when it answers no command the terminal has."""
        if self._outstanding is None:
            return False
        command, _wire, owner = self._outstanding
        if tr.details != command.details:
            log.info("card: TERMINAL RESPONSE for %s, expected %s", tr.details, command.details)
            return False
        self._outstanding = None
        if isinstance(command, OpenChannel) and tr.result.ok:
            self.bip_channels.update(cs.channel for cs in tr.channel_status if cs.channel)
        elif isinstance(command, CloseChannel):
            self.bip_channels.discard(command.channel)
        if owner is self.job and self.job is not None:
            self._on_yield(self.job.resume(tr))
        elif self.job is not None and not self._job_started:
            self._start_job()
        return True

    @property
    def awaiting_terminal_response(self) -> bool:
        return self._outstanding is not None

    def event(self, env: EventDownload | TimerExpiration) -> bool:
        """An event for the running job; False when the inbox is full ('93 00')."""
        if self.job is None:
            return True  # no applet is waiting for events: nothing to do
        if len(self._inbox) >= _MAX_INBOX:
            return False
        self._inbox.append(env)
        if self._waiting and self._outstanding is None and self._pending is None:
            self._on_yield(self.job.resume(self._inbox.popleft()))
        return True

    # ---------------------------------------------------------------- driving the job

    def _start_job(self) -> None:
        assert self.job is not None
        self._job_started = True
        self._on_yield(self.job.start())

    def _on_yield(self, y: object) -> None:
        job = self.job
        assert job is not None
        while True:
            if job.outcome is not None:
                self._on_outcome(job)
            if y is None:
                self.job = None
                self._waiting = False
                self._inbox.clear()
                return
            if y is WAIT:
                if self._inbox:
                    y = job.resume(self._inbox.popleft())
                    continue
                self._waiting = True
                return
            self._waiting = False
            self._command_number = self._command_number % 0xFE + 1
            numbered = dataclasses.replace(y, number=self._command_number)  # type: ignore[type-var]
            self._pending = (numbered, stk.build_proactive_command(numbered), job)
            return
