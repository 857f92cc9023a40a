"""The whole provisioning path on one machine: service + gateway + virtual modem + virtual SIM,
with the firmware's own lib/ driving the modem through pyserial on a pseudo-terminal.

    async with Stack(StackOptions()) as stack:
        outcome = await stack.provision()      # the firmware's result code, config, transcript
        await stack.stop_gateway(); ...; await stack.start_gateway()

Everything listens on loopback only. The operator steps go through the service's HTTP API
(``ztp.service.ServiceClient``): an operator token, the SIM with its PSK, the configuration.
The SIM's card state holds the same ICCID and PSK (or another PSK, for tests), a host name that
the modem's network DNS resolves to the gateway's loopback address, and the gateway's port.

Every observable step lands in ``stack.events`` (and goes to ``stack.listener`` as it happens):
AT bytes and APDUs from the modem's observers, AT lines and log lines from the firmware,
gateway log records. The demo's transcript and the tests read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ztp.iccid import build_ef_iccid
from ztp.modem import Faults, Habits, LatencyModel, Network, VirtualModem
from ztp.sim import CardState, CostModel, ExchangeRecord, RetryPolicy, VirtualSim

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DEVICE_ID",
    "DEMO_HOST",
    "DEMO_ICCID",
    "Event",
    "Outcome",
    "Stack",
    "StackError",
    "StackOptions",
]

log = logging.getLogger("ztp.demo")

DEMO_ICCID = "8944502509186389635"
DEMO_DEVICE_ID = bytes.fromhex("4d4b5247534d31343030000000000001")  # "MKRGSM1400" + serial
DEMO_HOST = "gw.ztp.test"
DEMO_CONFIG = (
    '{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'
)

ASGIApp = Callable[..., Awaitable[None]]


class StackError(Exception):
    """A part of the stack could not be brought up (the message says which and why)."""


@dataclass(frozen=True)
class Event:
    """One observable step. ``source``: "modem" (kind at_rx/at_tx/apdu/link/boot), "device"
    (kind at: info = {"dir", "line"}; kind log: {"text"}), "gateway" (kind = log event name),
    "stack" (kind step: {"text"}). ``t`` = seconds since the stack started."""

    t: float
    source: str
    kind: str
    info: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """One firmware run.

    Attributes:
        code: the firmware's result code (0 applied, 1 unchanged, else provision.E_*).
        name: its name ("OK", "UNCHANGED", "E_REQUEST_FAILED", ...); detail: the reason.
        config: the configuration in force on the device afterwards (config.json), or None.
        exchanges: the TLS connections the SIM made during this run.
        at_sent: every byte the firmware wrote to the modem, in order.
        events: the events of this run.
        elapsed_s: wall time of the run.
    """

    code: int
    name: str
    detail: str
    config: bytes | None
    exchanges: tuple[ExchangeRecord, ...]
    at_sent: bytes
    events: tuple[Event, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.code in (0, 1)


@dataclass
class StackOptions:
    """How to build the stack (defaults: the demo).

    Args:
        data_dir: service database, master key, credentials, card state and the device's
            config directory; None = a temporary directory removed on exit. Reusing one keeps
            every part's state (a second run finds its configuration unchanged).
        iccid, psk: the SIM as the operator imports it (psk None: generated, or the one in an
            existing card state). sim_psk: what the card holds instead (wrong-key tests).
        device_id: what the firmware sends with SET DEVICEID.
        config_body: the configuration set for (ICCID, DeviceID); None: none set.
        host: the gateway host name stored on the card (resolved by the modem's network DNS).
        latency, faults, habits: the virtual modem's knobs (``habits``: RTS at start, command
            pacing, RESET_N pulse, UICC access; docs/modem.md). sim_cost: the card's time model
            (None: the card takes no time). retry: the applet's retry policy.
        gateway_config: ``ztp.gateway.GatewayConfig`` (None: defaults, name "demo").
        fast_hashing: small Argon2 parameters for the service's secrets (tests only).
        upstream: wraps the service's ASGI app as the gateway sees it (inject a misbehaving
            service behind the gateway); the operator API is not wrapped.
        sim_factory: builds the card from its state (a misbehaving SIM in tests).
    """

    data_dir: Path | None = None
    iccid: str = DEMO_ICCID
    psk: bytes | None = None
    sim_psk: bytes | None = None
    device_id: bytes = DEMO_DEVICE_ID
    config_body: str | None = DEMO_CONFIG
    host: str = DEMO_HOST
    latency: LatencyModel = field(default_factory=LatencyModel)
    faults: Faults = field(default_factory=Faults)
    habits: Habits = field(default_factory=Habits)
    sim_cost: CostModel | None = field(default_factory=lambda: CostModel().after_pps())
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=5, base_s=2, cap_s=8, watchdog_s=20)
    )
    gateway_config: Any = None
    fast_hashing: bool = False
    upstream: Callable[[ASGIApp], ASGIApp] | None = None
    sim_factory: Callable[[CardState], VirtualSim] | None = None


class Stack:
    """Service + gateway + virtual modem + SIM, all on loopback (async context manager).

    Attributes after entry: ``service_url``, ``gateway_port``, ``pty``, ``modem``, ``sim``,
    ``admin`` (operator ``ServiceClient``, call it through ``asyncio.to_thread``),
    ``operator_token``, ``data_dir``, ``events``.
    """

    def __init__(self, options: StackOptions | None = None,
                 listener: Callable[[Event], None] | None = None) -> None:
        self.options = options or StackOptions()
        self.listener = listener
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._exit = contextlib.AsyncExitStack()
        self._tmp: str | None = None
        self.data_dir = Path()
        self.service_url = ""
        self.gateway_port = 0
        self.pty = ""
        self.operator_token = ""
        self.admin: Any = None
        self.modem: VirtualModem
        self.sim: VirtualSim
        self.gateway: Any = None
        self._gw_service: Any = None
        self._settings: Any = None
        self._log_handler: logging.Handler | None = None

    # ------------------------------------------------------------------ events
    def emit(self, source: str, kind: str, /, **info: Any) -> None:
        """Record one event (thread-safe) and pass it to the listener."""
        ev = Event(round(time.monotonic() - self._t0, 3), source, kind, info)
        with self._lock:
            self.events.append(ev)
            if self.listener is not None:
                try:
                    self.listener(ev)
                except Exception:  # a transcript must not break the run
                    log.exception("demo: listener failed")

    def step(self, text: str) -> None:
        self.emit("stack", "step", text=text)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            self._cleanup_tmp()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._exit.aclose()
        finally:
            self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def _start(self) -> None:
        opt = self.options
        if opt.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="ztp-demo-")
            self.data_dir = Path(self._tmp)
        else:
            self.data_dir = Path(opt.data_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._capture_gateway_log()
        self.step(f"configuration service + gateway (SQLite in {self.data_dir})")
        await self._start_service()
        await self._start_gateway_process()
        self.step("operator: token, SIM + PSK import, configuration (HTTP API)")
        psk = await self._operator_setup()
        self.step("virtual SIM: card state with the same ICCID and PSK")
        self._make_sim(psk)
        self.step("virtual modem + SIM on a pseudo-terminal")
        await self._start_modem()

    def _capture_gateway_log(self) -> None:
        stack = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                fields = getattr(record, "fields", None)
                event = getattr(record, "event", None) or record.getMessage()
                stack.emit("gateway", str(event), **(fields if isinstance(fields, dict) else {}))

        handler = _Handler(logging.INFO)
        gw_log = logging.getLogger("ztp.gateway")
        old_level = gw_log.level
        if gw_log.getEffectiveLevel() > logging.INFO:
            gw_log.setLevel(logging.INFO)
        gw_log.addHandler(handler)

        def remove() -> None:
            gw_log.removeHandler(handler)
            gw_log.setLevel(old_level)

        self._exit.callback(remove)

    async def _start_service(self) -> None:
        import uvicorn

        from ztp.gateway._cli import load_or_bootstrap_credentials
        from ztp.service import Settings, create_app

        settings = Settings.from_env(self.data_dir, create_key=True)
        if self.options.fast_hashing:
            settings = dataclasses.replace(settings, fast_hashing=True)
        self._settings = settings
        try:
            self._creds, _ = await asyncio.to_thread(
                load_or_bootstrap_credentials, settings, self.data_dir)
        except Exception as err:
            raise StackError(f"service credentials: {err}") from err
        app = create_app(settings)
        self._app = app
        # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket's proto says TCP (with 0, each kept-alive answer waits for a delayed ACK)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self._exit.callback(sock.close)
        server = uvicorn.Server(uvicorn.Config(self._route(app), log_level="warning",
                                               lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]))

        async def stop() -> None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)

        self._exit.push_async_callback(stop)
        while not server.started:
            if task.done():
                raise StackError(f"the service did not start: {task.exception()!r}")
            await asyncio.sleep(0.01)
        self.service_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.emit("stack", "service_up", url=self.service_url)

    def _route(self, app: ASGIApp) -> ASGIApp:
        """The service app; gateway-facing requests go through ``options.upstream``."""
        wrap = self.options.upstream
        if wrap is None:
            return app
        wrapped = wrap(app)

        async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = str(scope.get("path", "")) if scope.get("type") == "http" else ""
            if path.startswith(("/v1/config/", "/v1/data/")):
                await wrapped(scope, receive, send)
            else:
                await app(scope, receive, send)

        return route

    async def _start_gateway_process(self) -> None:
        from ztp.gateway import GatewayConfig, ServiceClient

        self._gw_service = ServiceClient(
            self.service_url, None, "demo",
            credentials=(self._creds["gateway_id"], self._creds["gateway_secret"]))
        self._exit.push_async_callback(self._gw_service.aclose)
        self._gw_config = self.options.gateway_config or GatewayConfig(name="demo")
        self._exit.push_async_callback(self.stop_gateway)
        await self.start_gateway()

    async def start_gateway(self) -> None:
        """Start the gateway (again): the first start picks a free port, later starts reuse it."""
        from ztp.gateway import Gateway

        if self.gateway is not None:
            return
        gw = Gateway(self._gw_service, self._gw_config)
        try:
            _, port = await gw.start("127.0.0.1", self.gateway_port)
        except OSError as err:
            raise StackError(f"gateway: cannot listen on 127.0.0.1:{self.gateway_port}: "
                             f"{err}") from err
        self.gateway, self.gateway_port = gw, port
        self.emit("stack", "gateway_up", port=port)

    async def stop_gateway(self) -> None:
        """Stop the gateway (connections to its port are refused until ``start_gateway``)."""
        gw, self.gateway = self.gateway, None
        if gw is not None:
            await gw.close()
            self.emit("stack", "gateway_down", port=self.gateway_port)

    async def _operator_setup(self) -> bytes:
        from ztp.service import ServiceClient, ServiceClientError

        opt = self.options
        admin = ServiceClient(self.service_url)
        self._exit.callback(admin.close)
        self.admin = admin
        self.operator_token = await asyncio.to_thread(
            admin.login, self._creds["admin_id"], self._creds["admin_secret"])
        self.emit("stack", "operator_token", client=self._creds["admin_id"])
        state_file = self.data_dir / "sim.json"
        psk = opt.psk
        if psk is None and state_file.exists():
            psk = CardState.load(state_file).psk
        if psk is None:
            psk = os.urandom(16)
        try:
            await asyncio.to_thread(admin.create_sim, opt.iccid, psk=psk, tag="1")
            self.emit("stack", "sim_imported", iccid=opt.iccid,
                      identity=build_ef_iccid(opt.iccid).hex())
        except ServiceClientError as err:
            if err.status != 409:
                raise StackError(f"importing SIM {opt.iccid}: {err}") from err
            self.emit("stack", "sim_known", iccid=opt.iccid)
        if opt.config_body is not None:
            got = await asyncio.to_thread(admin.set_config, opt.iccid, opt.device_id.hex(),
                                          opt.config_body)
            self.emit("stack", "config_set", device_id=opt.device_id.hex(),
                      size=len(opt.config_body.encode()), version=got.get("version"))
        return psk

    def _make_sim(self, psk: bytes) -> None:
        opt = self.options
        state_file = self.data_dir / "sim.json"
        card_psk = opt.sim_psk if opt.sim_psk is not None else psk
        if state_file.exists() and opt.data_dir is not None:
            state = CardState.load(state_file)
            if state.iccid != opt.iccid:
                raise StackError(f"{state_file} holds ICCID {state.iccid}, not {opt.iccid}")
            state.psk, state.host, state.port = card_psk, opt.host, self.gateway_port
        else:
            state = CardState.create(opt.iccid, card_psk, opt.host, self.gateway_port)
        state.save(state_file)
        if opt.sim_factory is not None:
            self.sim = opt.sim_factory(state)
        else:
            self.sim = VirtualSim(state, cost_model=opt.sim_cost or CostModel(),
                                  retry=opt.retry)
        self.emit("stack", "sim_ready", iccid=state.iccid, identity=state.ef_iccid.hex(),
                  host=state.host, port=state.port)

    async def _start_modem(self) -> None:
        opt = self.options
        network = Network(dns={opt.host: "127.0.0.1"})
        modem = VirtualModem(self.sim, network=network, latency=opt.latency, faults=opt.faults,
                             apply_card_cost=opt.sim_cost is not None, habits=opt.habits)
        modem.observers.append(lambda kind, info: self.emit("modem", kind, **info))
        self.modem = modem
        self._exit.push_async_callback(modem.close)
        self.pty = await modem.serve_pty()
        self.emit("stack", "modem_ready", pty=self.pty,
                  dns=f"{opt.host} -> 127.0.0.1 (gateway port {self.gateway_port})")

    # ------------------------------------------------------------------ provisioning
    @property
    def config_dir(self) -> Path:
        return self.data_dir / "device"

    async def provision(
        self,
        *,
        config_dir: Path | None = None,
        attempts: int = 3,
        poll_deadline_ms: int = 60_000,
        reg_deadline_ms: int = 30_000,
        baud: int = 115200,
        label: str | None = None,
        poll_first_ms: int | None = None,
        poll_max_ms: int | None = None,
    ) -> Outcome:
        """Run the firmware's lib/ once against the modem (pyserial on the pty), in a thread.

        ``poll_first_ms``/``poll_max_ms`` override the firmware's status poll schedule (None:
        its default), for the provisioning benchmark.

        Returns the firmware's outcome; never raises for a failed provisioning (``code``
        says it). Raises StackError if the pty cannot be opened.
        """
        import serial

        from ztp.device import SerialUart, run_provisioning
        from ztp.device._host import load_firmware

        provision_mod = load_firmware()["provision"]
        cdir = config_dir or self.config_dir
        first = len(self.events)
        n_exchanges = len(self.sim.exchanges)
        sent = bytearray()

        def at_hook(direction: str, line: bytes) -> None:
            self.emit("device", "at", dir=direction, line=bytes(line))

        def on_log(text: str) -> None:
            self.emit("device", "log", text=text)

        def run() -> tuple[int, str]:
            try:
                ser = serial.Serial(self.pty, baudrate=baud, timeout=0.02)
            except serial.SerialException as err:
                raise StackError(f"cannot open {self.pty}: {err}") from err

            class _Recording(SerialUart):
                def write(self, data: bytes | memoryview) -> int:
                    sent.extend(bytes(data))
                    return super().write(data)

            try:
                return run_provisioning(_Recording(ser), self.options.device_id, cdir,
                                        attempts=attempts, poll_deadline_ms=poll_deadline_ms,
                                        reg_deadline_ms=reg_deadline_ms, log=on_log,
                                        at_hook=at_hook, poll_first_ms=poll_first_ms,
                                        poll_max_ms=poll_max_ms)
            finally:
                ser.close()

        self.step(label or f"firmware lib/ provisioning through pyserial on {self.pty}")
        t0 = time.monotonic()
        code, detail = await asyncio.to_thread(run)
        elapsed = time.monotonic() - t0
        cfg_file = cdir / "config.json"
        config = cfg_file.read_bytes() if cfg_file.exists() else None
        name = provision_mod.result_name(code)
        self.emit("stack", "provisioned", code=code, name=name, detail=detail)
        with self._lock:
            events = tuple(self.events[first:])
        return Outcome(code, name, detail, config, tuple(self.sim.exchanges[n_exchanges:]),
                       bytes(sent), events, elapsed)

    async def audit(self, **params: Any) -> list[dict[str, Any]]:
        """The service's audit trail (operator API)."""
        return list(await asyncio.to_thread(self.admin.audit, **params))
