# safe2: client of the SAFE2 SIM applet (SAFE2-PROTOCOL.md "APDUs"), over an open, selected
# logical channel.
#
#   set DeviceID      0N DA 02 C0 Lc <id>     -> 9000
#   telemetry         0N DA 02 C1 Lc <data>   -> 9000
#   start request     0N CA 00 00 00          -> 9000   (supersedes any earlier request)
#   poll status       0N CC 02 00 00          -> 61 04 -> C0 -> SS SS RR RR 9000
#   read config       0N CA 01 00 00          -> 61 xx -> C0 -> <body> 9000
# Status SSSS: 0003 done without data, 0007 data ready, 000F error; RRRR = result code
# (non-zero = failure). Other states = still working (assumed: 0001 busy). The protocol has no
# request id, so a result is trusted only after this run's own CA 00 (never a stale 0007).

from micropython import const

import apdu as _apdu

_INS_PUT_DATA = const(0xDA)
_INS_GET_DATA = const(0xCA)
_INS_STATUS = const(0xCC)
_P2_DEVICE_ID = const(0xC0)
_P2_TELEMETRY = const(0xC1)

STATUS_DONE = const(0x0003)
STATUS_DATA = const(0x0007)
STATUS_ERROR = const(0x000F)

MAX_BODY = const(255)


# the applet answered something outside the protocol: handled as any ApduError (retried)
Safe2Error = _apdu.ApduError


class BodyTooLong(_apdu.ApduError):
    pass


class Safe2:
    def __init__(self, apdu, channel):
        self.apdu = apdu
        self.cla = _apdu.cla_for_channel(channel)

    def _ok(self, what, sw):
        if sw != _apdu.SW_OK:
            raise Safe2Error("%s: expected SW 9000, got %04X" % (what, sw), sw)

    def set_device_id(self, device_id):
        if not 1 <= len(device_id) <= 255:
            raise ValueError("DeviceID must be 1-255 bytes")
        self._ok("SET DEVICEID", self.apdu.transmit(self.cla, _INS_PUT_DATA, 0x02, _P2_DEVICE_ID,
                                                     device_id))

    def send_telemetry(self, data):
        if not 1 <= len(data) <= 255:
            raise ValueError("telemetry must be 1-255 bytes")
        self._ok("TELEMETRY", self.apdu.transmit(self.cla, _INS_PUT_DATA, 0x02, _P2_TELEMETRY,
                                                  data))

    def start_request(self):
        self._ok("START REQUEST", self.apdu.transmit(self.cla, _INS_GET_DATA, 0x00, 0x00,
                                                      None, 0))

    def poll_status(self):
        # -> (state, result) as ints
        a = self.apdu
        sw = a.transmit(self.cla, _INS_STATUS, 0x02, 0x00, None, 0)
        self._ok("STATUS", sw)
        if a.rsp_len != 4:
            raise Safe2Error("STATUS: expected 4 bytes, got %d" % a.rsp_len, sw)
        r = a.rsp
        return (r[0] << 8) | r[1], (r[2] << 8) | r[3]

    def read_config(self):
        # -> body length; the body is in self.apdu.rsp[:n] (shared buffer: the next APDU
        # overwrites it). More than 255 bytes -> BodyTooLong, nothing returned. A garbled or
        # missing +CSIM: line stays an ApduError (CsimError): retried like any link fault.
        a = self.apdu
        try:
            sw = a.transmit(self.cla, _INS_GET_DATA, 0x01, 0x00, None, 0)
        except _apdu.TooLong as e:
            raise BodyTooLong("READ CONFIG: body longer than %d bytes (%s)" % (MAX_BODY, e),
                              e.sw)
        self._ok("READ CONFIG", sw)
        if a.rsp_len > MAX_BODY:
            raise BodyTooLong("READ CONFIG: body of %d bytes, at most %d"
                              % (a.rsp_len, MAX_BODY), sw)
        return a.rsp_len
