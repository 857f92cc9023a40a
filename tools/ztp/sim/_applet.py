"""The SAFE2 applet (SAFE2-PROTOCOL.md APDU table): DA 02 C0 DeviceID, DA 02 C1 telemetry,
CA 00 request, CC 02 status (61 04), CA 01 read (61 xx); and the lifecycle of its network
job (``_job.py``): started, superseded, restarted, finished into the card state.

Sans-I/O: the applet changes ``CardState`` in memory and raises ``changed``; whoever holds
the card file (``VirtualSim``) writes it before the answer leaves the card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ztp import stk

from ._apdu import (
    INS_SAFE2_GET,
    INS_SAFE2_PUT,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_INCORRECT_P1P2,
    SW_OK,
    SW_WRONG_LENGTH,
    Command,
    sw_bytes,
)
from ._dns import DnsCache
from ._job import Job
from ._request import Config, CryptoWork, ExchangeRecord, Request, ResultCode, RetryPolicy
from ._state import AppletStatus, CardState, ip_literal
from ._toolkit import ToolkitSession

__all__ = ["Safe2Applet"]

log = logging.getLogger("ztp.sim")

# TERMINAL PROFILE facilities the applet needs (TS 102 223 §5.2): BIP over TCP with the data
# available event; UDP too when it has to resolve a name.
_NEEDS: tuple[stk.Feature, ...] = (
    stk.Feature.OPEN_CHANNEL,
    stk.Feature.CLOSE_CHANNEL,
    stk.Feature.SEND_DATA,
    stk.Feature.RECEIVE_DATA,
    stk.Feature.TCP_CLIENT_REMOTE,
    stk.Feature.EVENT_DATA_AVAILABLE,
)

Reply = Callable[[bytes], bytes]  # outgoing data the T=0 way on the command's channel


class Safe2Applet:
    """The applet's instructions and its job.

    Args:
        state: the card state. rng: randomness (TLS, DNS ids). retry: the retry policy.
    """

    def __init__(
        self, state: CardState, *, rng: Callable[[int], bytes], retry: RetryPolicy
    ) -> None:
        self.state = state
        self._rng = rng
        self._retry = retry
        self.toolkit = ToolkitSession(self._job_outcome)
        self.exchanges: list[ExchangeRecord] = []  # every TLS connection the applet made
        self.crypto_work = CryptoWork()
        # transient memory: the DNS answer lives while the terminal's timer 3 runs (_job.py)
        self.dns_cache = DnsCache()
        self.profile = b""
        self.changed = False  # the card state changed since the owner last looked

    def power_on(self) -> None:
        """Card reset: a running request ends, reported as ``000F`` / INTERRUPTED; so does one
        the state file says was running (the card lost power mid-request)."""
        self.toolkit.cancel()
        self.toolkit.reset()
        self.dns_cache.clear()
        self.profile = b""
        if self.state.status == AppletStatus.BUSY:
            self._set_outcome(AppletStatus.ERROR, ResultCode.INTERRUPTED, b"")

    def terminal_profile(self, profile: bytes) -> None:
        """A new TERMINAL PROFILE without a card reset means the terminal restarted (modem
        reboot): its channels, timers and the command it had fetched are gone. A running
        request starts over rather than waiting forever."""
        self.profile = profile
        self.toolkit.terminal_restart()
        self.dns_cache.clear()  # its expiry timer went with the terminal
        job = self.toolkit.cancel()
        if job is not None:
            log.info("SAFE2: terminal restarted, request starts over")
            self._new_request(list(job.requests), count=False)

    # ---------------------------------------------------------------- instructions

    def instruction(self, cmd: Command, reply: Reply) -> bytes:
        """One SAFE2 instruction (the ADF is selected on its channel)."""
        if cmd.ins == INS_SAFE2_PUT:
            return self._put(cmd)
        if cmd.ins == INS_SAFE2_GET:
            return self._get(cmd, reply)
        # INS_SAFE2_STATUS
        if (cmd.p1, cmd.p2) != (0x02, 0x00):
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.data:
            return sw_bytes(SW_WRONG_LENGTH)
        return reply(self.state.status.to_bytes(2, "big") + self.state.result.to_bytes(2, "big"))

    def _put(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) not in ((0x02, 0xC0), (0x02, 0xC1)):
            return sw_bytes(SW_INCORRECT_P1P2)
        if not cmd.data or cmd.le is not None:
            return sw_bytes(SW_WRONG_LENGTH)
        if cmd.p2 == 0xC0:  # DeviceID
            if len(cmd.data) > 64:
                return sw_bytes(SW_WRONG_LENGTH)
            self.state.device_id = cmd.data
            self.changed = True
            return sw_bytes(SW_OK)
        # telemetry: delivered by POST (before the GET when a request is running)
        if self.state.device_id is None:
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        self.state.telemetry = cmd.data
        post = Request("POST", self.targets()[1])
        job = self.toolkit.job
        if job is not None:
            job.add(post)
            self.changed = True
        else:
            self._new_request([post])
        return sw_bytes(SW_OK)

    def _get(self, cmd: Command, reply: Reply) -> bytes:
        if (cmd.p1, cmd.p2) == (0x00, 0x00):  # start configuration request
            if cmd.data or cmd.p3 not in (None, 0):
                return sw_bytes(SW_WRONG_LENGTH)
            if self.state.device_id is None:
                return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
            requests = []
            if self.state.telemetry is not None:
                requests.append(Request("POST", self.targets()[1]))
            requests.append(Request("GET", self.targets()[0]))
            self._new_request(requests)
            return sw_bytes(SW_OK)
        if (cmd.p1, cmd.p2) == (0x01, 0x00):  # read configuration
            if cmd.data:
                return sw_bytes(SW_WRONG_LENGTH)
            if self.state.status != AppletStatus.DATA or not self.state.body:
                return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
            return reply(self.state.body)
        return sw_bytes(SW_INCORRECT_P1P2)

    def targets(self) -> tuple[str, str]:
        """The config GET and telemetry POST targets (paths with the ICCID query)."""
        assert self.state.device_id is not None
        query = f"?iccid={self.state.ef_iccid.hex()}"
        dev = self.state.device_id.hex()
        return f"/v1/config/{dev}{query}", f"/v1/data/{dev}{query}"

    # ---------------------------------------------------------------- the job

    def _new_request(self, requests: list[Request], count: bool = True) -> None:
        """Start a job for ``requests``, superseding any unfinished one."""
        if self.toolkit.cancel() is not None:
            log.info("SAFE2: unfinished request superseded")
        if count:
            self.state.counters.requests += 1
            self.changed = True
        need = list(_NEEDS)
        if ip_literal(self.state.host) is None:
            need.append(stk.Feature.UDP_CLIENT_REMOTE)
        if not all(stk.profile_supports(self.profile, f) for f in need):
            self.state.counters.failures += 1
            self._set_outcome(AppletStatus.ERROR, ResultCode.NO_BIP, b"")
            return
        timers = stk.profile_supports(self.profile, stk.Feature.TIMER_MANAGEMENT) and (
            stk.profile_supports(self.profile, stk.Feature.TIMER_EXPIRATION)
        )
        assert self.state.device_id is not None
        s = self.state
        config = Config(s.ef_iccid, s.psk, s.host, s.port, s.device_id, timers)
        job = Job(
            config,
            requests,
            telemetry=lambda: self.state.telemetry,
            rng=self._rng,
            retry=self._retry,
            open_channels=self.toolkit.open_channels,
            work=self.crypto_work,
            dns_cache=self.dns_cache,
        )
        self._set_outcome(AppletStatus.BUSY, 0, b"")
        self.toolkit.run(job)

    def _job_outcome(self, job: Job) -> None:
        if self.state.status != AppletStatus.BUSY or job.outcome is None:
            return  # published already (teardown still running) or superseded
        status, result, body = job.outcome
        if job.delivered_telemetry:
            self.state.telemetry = None
        counters = self.state.counters
        counters.attempts += job.attempts
        counters.tls_handshakes += job.handshakes
        if status == AppletStatus.ERROR:
            counters.failures += 1
        else:
            counters.successes += 1
        self.exchanges.extend(job.exchanges)
        log.info(
            "SAFE2: request finished: state %04X result %04X, %d bytes", status, result, len(body)
        )
        self._set_outcome(status, result, body)

    def _set_outcome(self, status: int, result: int, body: bytes) -> None:
        self.state.status, self.state.result, self.state.body = status, result, body
        self.changed = True

