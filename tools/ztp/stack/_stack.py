"""One running provisioning stack: configuration service + gateway + virtual modem + virtual
SIM, with their options. ``ztp serve`` (service + gateway only), the demo and the end-to-end
tests (all four parts, the firmware on the modem's pty), the storm bench, the OTA tests and the
firmware heap run all bring the parts up here, so they run the same assembly.

    async with Stack(StackOptions()) as stack:       # all on loopback, free ports
        stack.service_url, stack.gateway_port, stack.pty
        await stack.stop_gateway(); ...; await stack.start_gateway()

The operator steps go through the service's HTTP API (``ztp.service.ServiceClient``): an
operator token, the SIM with its PSK, the configuration. The SIM's card state holds the same
ICCID and PSK (or another PSK, for tests), a host name that the modem's network DNS resolves to
the gateway's loopback address, and the gateway's port.

Every observable step lands in ``stack.events`` (and goes to ``stack.listener`` as it happens):
AT bytes and APDUs from the modem's observers, gateway log records, the stack's own steps;
``ztp.demo.Stack`` adds the firmware's AT and log lines. The demo's transcript and the tests
read them.

This package imports neither ``ztp.device`` nor ``ztp.firmware``: the firmware side (running
lib/ on the pty) is ``ztp.demo``'s, and the heap run drives the pty with its own build.
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
from ztp.sim import CardState, CostModel, RetryPolicy, VirtualSim

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DEVICE_ID",
    "DEMO_HOST",
    "DEMO_ICCID",
    "Event",
    "Stack",
    "StackError",
    "StackOptions",
]

log = logging.getLogger("ztp.stack")

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
        gateway_config: ``ztp.gateway.GatewayConfig`` (None: defaults, name "demo"); its
            name is also the gateway's name towards the service.
        fast_hashing: small Argon2 parameters for the service's secrets (tests only).
        upstream: wraps the service's ASGI app as the gateway sees it (inject a misbehaving
            service behind the gateway); the operator API is not wrapped.
        sim_factory: builds the card from its state (a misbehaving SIM in tests).
        settings: the service's ``ztp.service.Settings`` (None: ``Settings.from_env(data_dir,
            create_key=True)``, with ``fast_hashing``).
        credentials: the admin and gateway ``ztp.service.Credentials`` (None: loaded from, or
            made on first start into, ``data_dir/credentials.json``).
        service_listen, gateway_listen: (host, port) to listen on; port 0 = a free one.
        service_socket: a socket already bound to ``service_listen`` (``ztp serve`` binds
            before it writes anything); the stack closes it on exit.
        with_modem: False = service + gateway only: no operator steps, no SIM, no modem
            (``ztp serve``, the storm bench, tests that bring their own cards).
        record_events: False = keep no events (a long-running server must not grow a list).
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
    settings: Any = None
    credentials: Any = None
    service_listen: tuple[str, int] = ("127.0.0.1", 0)
    gateway_listen: tuple[str, int] = ("127.0.0.1", 0)
    service_socket: socket.socket | None = None
    with_modem: bool = True
    record_events: bool = True


class Stack:
    """Service + gateway (+ virtual modem + SIM), as an async context manager.

    Attributes after entry: ``service_url``, ``gateway``, ``gateway_host``, ``gateway_port``,
    ``credentials``, ``settings``, ``data_dir``, ``events``; with the modem also ``pty``,
    ``modem``, ``sim``, ``admin`` (operator ``ServiceClient``, call it through
    ``asyncio.to_thread``), ``operator_token``.

    Raises (on entry): StackError (a part cannot listen or start; the credentials file
    cannot be used), ``ztp.service.MasterKeyError``, ``sqlalchemy.exc.SQLAlchemyError`` (the
    database); whatever was started is stopped again.
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
        self.gateway_host = ""
        self.gateway_port = 0
        self.pty = ""
        self.operator_token = ""
        self.admin: Any = None
        self.modem: VirtualModem
        self.sim: VirtualSim
        self.gateway: Any = None
        self.credentials: Any = None
        self.settings: Any = None
        self._gw_service: Any = None

    # ------------------------------------------------------------------ events
    def emit(self, source: str, kind: str, /, **info: Any) -> None:
        """Record one event (thread-safe) and pass it to the listener."""
        if not self.options.record_events:
            return
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
        if opt.service_socket is not None:
            self._exit.callback(opt.service_socket.close)
        if opt.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="ztp-stack-")
            self.data_dir = Path(self._tmp)
        else:
            self.data_dir = Path(opt.data_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if opt.record_events:
            self._capture_gateway_log()
        self.step(f"configuration service + gateway (SQLite in {self.data_dir})")
        await self._start_service()
        await self._start_gateway_process()
        if not opt.with_modem:
            return
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

        from ztp.service import (
            CredentialsError,
            Settings,
            create_app,
            load_or_bootstrap_credentials,
        )

        opt = self.options
        settings = opt.settings
        if settings is None:
            settings = Settings.from_env(self.data_dir, create_key=True)
            if opt.fast_hashing:
                settings = dataclasses.replace(settings, fast_hashing=True)
        self.settings = settings
        self.credentials = opt.credentials
        if self.credentials is None:
            try:
                self.credentials, _ = await asyncio.to_thread(
                    load_or_bootstrap_credentials, settings, self.data_dir)
            except CredentialsError as err:
                raise StackError(f"service credentials: {err}") from err
        app = create_app(settings)
        sock = opt.service_socket
        if sock is None:
            host, port = opt.service_listen
            # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listening
            # socket's proto says TCP (with 0, each kept-alive answer waits for a delayed ACK)
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                 socket.SOCK_STREAM, socket.IPPROTO_TCP)
            self._exit.callback(sock.close)
            try:
                sock.bind((host, port))
            except OSError as err:
                raise StackError(f"service: cannot listen on {host}:{port}: "
                                 f"{err.strerror or err}") from err
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
        host = opt.service_listen[0]
        self.service_url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
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

        self._gw_config = self.options.gateway_config or GatewayConfig(name="demo")
        creds = self.credentials
        self._gw_service = ServiceClient(self.service_url, None, self._gw_config.name,
                                         credentials=(creds.gateway_id, creds.gateway_secret))
        self._exit.push_async_callback(self._gw_service.aclose)
        self._exit.push_async_callback(self.stop_gateway)
        await self.start_gateway()

    async def start_gateway(self) -> None:
        """Start the gateway (again): the first start picks a free port, later starts reuse it."""
        from ztp.gateway import Gateway

        if self.gateway is not None:
            return
        gw = Gateway(self._gw_service, self._gw_config)
        host, port = self.options.gateway_listen
        port = self.gateway_port or port  # a restart takes the port of the first start
        try:
            self.gateway_host, port = await gw.start(host, port)
        except OSError as err:
            raise StackError(f"gateway: cannot listen on {host}:{port}: "
                             f"{err.strerror or err}") from err
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
            admin.login, self.credentials.admin_id, self.credentials.admin_secret)
        self.emit("stack", "operator_token", client=self.credentials.admin_id)
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

    async def audit(self, **params: Any) -> list[dict[str, Any]]:
        """The service's audit trail (operator API)."""
        return list(await asyncio.to_thread(self.admin.audit, **params))
