"""The demo's transcript: a ``Stack`` listener that prints each event as it happens (rich).

One line per event, prefixed with the seconds since the stack started:

    >  AT line sent by the firmware          <  AT line received (after echo and URC handling)
    APDU   a host APDU named (MANAGE CHANNEL, SELECT SAFE2, SET DEVICEID, ...) with its SW
    STK    a SIM Toolkit exchange between modem and SIM (FETCH -> OPEN CHANNEL, TR, ENVELOPE)
    NET    a BIP socket of the modem (open, connected, closed, failed)
    GW     the gateway's log events (handshake, request forwarded / refused, connection closed)
    fw     the firmware's own log lines (state changes, result)

Colours only on a terminal (rich turns them off otherwise); text stays greppable.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from rich.console import Console
from rich.text import Text

from ztp.stack import Event

from ._decode import ApduDecoder
from ._stack import Outcome

__all__ = ["Transcript"]

_MAX_AT = 96  # characters of an AT line shown (a +CSIM reply can be ~530)

_STYLE = {
    ">": "cyan",
    "<": "green",
    "!": "bold red",
    "apdu": "bold magenta",
    "stk": "blue",
    "net": "bright_black",
    "gw": "yellow",
    "fw": "white",
    "err": "bold red",
}

_GATEWAY_FIELDS = {
    "handshake_complete": ("identity", "mode", "suite", "sni", "key_tag"),
    "request_forwarded": ("method", "path", "status", "body_bytes"),
    "request_refused": ("status", "kind", "reason"),
    "connection_closed": ("reason", "phase", "alert", "status"),
    "psk_lookup_failed": ("identity", "error"),
    "forward_failed": ("error",),
}


def _short(text: str, limit: int = _MAX_AT) -> str:
    return text if len(text) <= limit else text[: limit - 14] + f"... ({len(text)} chars)"


class Transcript:
    """Prints a stack's events (``Stack(listener=transcript)``).

    Args:
        console: where to print (default: stdout, colour when it is a terminal).
        verbose: also print whole AT lines, UART-level boot events and every BIP socket send.
        quiet: print only steps and results.
    """

    def __init__(self, console: Console | None = None, *, verbose: bool = False,
                 quiet: bool = False) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.quiet = quiet
        self.muted = False  # a re-run shows only its result
        self._decoder = ApduDecoder()
        self._lock = threading.Lock()
        self._steps = 0

    # ------------------------------------------------------------------ output helpers
    def _line(self, t: float | None, tag: str, style: str, text: str,
              extra: str = "", extra_style: str = "dim") -> None:
        out = Text()
        out.append(f"{t:7.3f} " if t is not None else " " * 8, style="dim")
        out.append(f"{tag:<5}", style=style)
        out.append(text, style=style)
        if extra:
            out.append("  " + extra, style=extra_style)
        self.console.print(out)

    def heading(self, text: str) -> None:
        self._steps += 1
        self.console.print(Text(f"\n[{self._steps}] {text}", style="bold"))

    def note(self, text: str, style: str = "") -> None:
        self.console.print(Text("        " + text, style=style))

    # ------------------------------------------------------------------ listener
    def __call__(self, ev: Event) -> None:
        with self._lock:
            self._event(ev)

    def _event(self, ev: Event) -> None:
        info = ev.info
        if ev.source == "stack":
            self._stack_event(ev)
            return
        if self.quiet or self.muted:
            return
        if ev.source == "device" and ev.kind == "at":
            d = str(info["dir"])
            text = bytes(info["line"]).decode("ascii", "replace")
            self._line(ev.t, d, _STYLE.get(d, ""), text if self.verbose else _short(text))
        elif ev.source == "device" and ev.kind == "log":
            self._line(ev.t, "fw", _STYLE["fw"], str(info["text"]))
        elif ev.source == "modem" and ev.kind == "apdu":
            self._apdu(ev)
        elif ev.source == "modem" and ev.kind == "link":
            self._link(ev)
        elif ev.source == "modem" and ev.kind == "boot":
            atr = info.get("atr")
            self._line(ev.t, "SIM", _STYLE["stk"],
                       "reset, ATR " + (atr.hex(" ").upper() if atr else "none (no SIM)"))
        elif ev.source == "gateway":
            self._gateway(ev)

    def _stack_event(self, ev: Event) -> None:
        info = ev.info
        if ev.kind == "step":
            self.heading(str(info["text"]))
        elif ev.kind == "service_up":
            self.note(f"service API on {info['url']} (uvicorn, SQLite)")
        elif ev.kind == "gateway_up":
            self.note(f"gateway listening on 127.0.0.1:{info['port']} (TLS 1.3 PSK)")
        elif ev.kind == "gateway_down":
            self.note(f"gateway on port {info['port']} stopped")
        elif ev.kind == "operator_token":
            self.note(f"operator token for client '{info['client']}' (POST /v1/auth/token)")
        elif ev.kind == "sim_imported":
            self.note(f"SIM {info['iccid']} imported with its PSK (POST /v1/sims), "
                      f"PSK identity {info['identity']}")
        elif ev.kind == "sim_known":
            self.note(f"SIM {info['iccid']} already known to the service (kept)")
        elif ev.kind == "config_set":
            self.note(f"configuration v{info['version']} ({info['size']} bytes) set for "
                      f"DeviceID {info['device_id']} (PUT /v1/sims/.../configs/...)")
        elif ev.kind == "sim_ready":
            self.note(f"card: ICCID {info['iccid']}, identity {info['identity']}, "
                      f"gateway {info['host']}:{info['port']}")
        elif ev.kind == "modem_ready":
            self.note(f"UART on {info['pty']}; network DNS {info['dns']}")
        elif ev.kind == "provisioned" and not self.quiet and not self.muted:
            style = "bold green" if info["code"] in (0, 1) else "bold red"
            detail = f": {info['detail']}" if info["detail"] != info["name"] else ""
            self._line(ev.t, "fw", style, f"provisioning ended: {info['name']} "
                                          f"(code {info['code']}){detail}")

    def _apdu(self, ev: Event) -> None:
        info = ev.info
        s = self._decoder.describe(bytes(info["command"]), bytes(info["response"]))
        source = info.get("source")
        if source == "modem" and not self.verbose:
            return  # the modem's own EF_ICCID read at boot
        sw = f"{s.sw:04X} {s.sw_text}" if s.sw is not None else s.sw_text
        bad = s.sw is not None and s.sw >> 8 not in (0x90, 0x91, 0x61)
        if s.toolkit:
            self._line(ev.t, "STK", _STYLE["err"] if bad else _STYLE["stk"],
                       f"{s.name}" + (f": {s.detail}" if s.detail else ""), sw)
        else:
            self._line(ev.t, "APDU", _STYLE["err"] if bad else _STYLE["apdu"],
                       f"{s.name}" + (f": {s.detail}" if s.detail else ""), sw)

    def _link(self, ev: Event) -> None:
        info = ev.info
        event = info.get("event")
        ch = info.get("channel")
        if event == "open":
            text = f"channel {ch}: {info.get('transport')} connect to " \
                   f"{info.get('host')}:{info.get('port')}"
        elif event == "opened":
            text = f"channel {ch}: connected"
        elif event == "failed":
            self._line(ev.t, "NET", _STYLE["err"], f"channel {ch}: connect failed: "
                                                   f"{info.get('error')}")
            return
        elif event == "remote_closed":
            text = f"channel {ch}: closed by the peer"
        elif event == "close":
            text = f"channel {ch}: closed"
        elif self.verbose:
            text = f"channel {ch}: {event} {info.get('size', '')} bytes"
        else:
            return
        self._line(ev.t, "NET", _STYLE["net"], text)

    def _gateway(self, ev: Event) -> None:
        fields = _GATEWAY_FIELDS.get(ev.kind)
        if fields is None and not self.verbose:
            return
        info: dict[str, Any] = ev.info
        keys = fields or tuple(info)
        text = " ".join(f"{k}={info[k]}" for k in keys if info.get(k) is not None)
        bad = ev.kind in ("request_refused", "psk_lookup_failed", "forward_failed") or (
            ev.kind == "connection_closed" and info.get("reason") != "responded")
        self._line(ev.t, "GW", _STYLE["err"] if bad else _STYLE["gw"], f"{ev.kind} {text}")

    # ------------------------------------------------------------------ summary
    def summary(self, outcome: Outcome) -> None:
        """TLS, HTTP and the applied configuration of one run."""
        c = self.console
        for ex in outcome.exchanges:
            mode = (ex.key_exchange_mode or "?").lower()
            c.print(Text.assemble(
                ("        TLS   ", "bold"),
                f"TLS 1.3 {mode}, {ex.cipher_suite}, PSK identity {ex.identity_hex}, "
                f"{ex.bytes_sent} bytes sent / {ex.bytes_received} received "
                f"({ex.address}:{ex.port})"))
            status = ex.http_status if ex.http_status is not None else "no answer"
            c.print(Text.assemble(("        HTTP  ", "bold"),
                                  f"{ex.method} {ex.target} -> {status}"))
        if outcome.config is not None:
            try:
                pretty = json.dumps(json.loads(outcome.config), indent=2)
            except ValueError:
                pretty = outcome.config.decode("utf-8", "replace")
            c.print(Text("        config in force on the device (config.json):", style="bold"))
            for line in pretty.splitlines():
                c.print(Text("          " + line, style="green"))

    def device_state(self, view: dict[str, Any]) -> None:
        """The device as the service recorded it (``GET /v1/devices/{iccid}/{device_id}``):
        its state and the last report the firmware sent, so the loop from the configuration
        delivered to the configuration the device says it holds is visible."""
        c = self.console
        state = str(view.get("state"))
        style = {"in_sync": "bold green", "failed": "bold red"}.get(state, "bold yellow")
        c.print(Text.assemble(("        DEVICE ", "bold"), (state, style),
                              f" (service view of {view.get('iccid')}/{view.get('device_id')})"))
        delivered = view.get("delivered") or {}
        if delivered:
            c.print(Text(f"          delivered: digest {delivered.get('digest')}, service "
                         f"version {delivered.get('version')}"))
        reported = view.get("reported")
        if not reported:
            c.print(Text("          reported:  nothing yet (the firmware sends its report "
                         "with its next run)", style="yellow"))
            return
        rejected = f", rejected {reported['rejected']}" if reported.get("rejected") else ""
        c.print(Text(f"          reported:  outcome {reported.get('outcome')}, code "
                     f"{reported.get('code')}, version {reported.get('version')}, digest "
                     f"{reported.get('digest')}{rejected}"))
