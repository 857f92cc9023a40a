"""States of the SAFE2 applet's network job and the transitions between them, in one table
(as h11's ``_state.py``). States say what the job is doing or waiting for; ``Job._set_state``
is the only writer and refuses a move the table does not list (a bug in the job, not a remote
error: the terminal cannot make the job skip a state).

    START ──► RESOLVE ──► CONNECT ──► HANDSHAKE ──► HTTP ──► TEARDOWN ──► FINISH ──► DONE
      │          ▲  ╲         ▲                                 │   ▲
      │          │   ╲        └───────── next request ──────────┘   │
      │          │    ╲ (any of RESOLVE..TEARDOWN fails)            │
      │          │     ► RECOVER ──► BACKOFF ──► RESOLVE / CONNECT  │
      │          │          └─────────── no retry left ─────────────┘
      └──────────┴──► (an IP literal or a cached answer goes straight to CONNECT)
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TRANSITIONS", "JobState"]


class JobState(Enum):
    START = "START"  # closing channels a superseded job left open
    RESOLVE = "RESOLVE"  # DNS query over a UDP channel
    CONNECT = "CONNECT"  # OPEN CHANNEL tcp to the gateway
    HANDSHAKE = "HANDSHAKE"  # TLS 1.3 PSK handshake
    HTTP = "HTTP"  # request sent, waiting for the complete response
    TEARDOWN = "TEARDOWN"  # close_notify, CLOSE CHANNEL (outcome already published)
    RECOVER = "RECOVER"  # an attempt failed: closing its channels
    BACKOFF = "BACKOFF"  # waiting for timer 2 before the next attempt
    FINISH = "FINISH"  # deactivating the watchdog
    DONE = "DONE"  # the job's generator has returned


_ATTEMPT = frozenset({JobState.RESOLVE, JobState.CONNECT})
_FAILABLE = frozenset({JobState.RECOVER})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.START: _ATTEMPT | {JobState.FINISH},
    JobState.RESOLVE: frozenset({JobState.CONNECT}) | _FAILABLE,
    JobState.CONNECT: frozenset({JobState.HANDSHAKE}) | _FAILABLE,
    JobState.HANDSHAKE: frozenset({JobState.HTTP}) | _FAILABLE,
    JobState.HTTP: frozenset({JobState.TEARDOWN}) | _FAILABLE,
    JobState.TEARDOWN: frozenset({JobState.CONNECT, JobState.FINISH}) | _FAILABLE,
    # without toolkit timers the next attempt starts at once; with one left, none starts
    JobState.RECOVER: _ATTEMPT | {JobState.BACKOFF, JobState.FINISH},
    JobState.BACKOFF: _ATTEMPT,
    JobState.FINISH: frozenset({JobState.DONE}),
    JobState.DONE: frozenset(),
}
