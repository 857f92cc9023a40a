# apdu: command APDUs over AT+CSIM (3GPP TS 27.007 8.17; ISO 7816-4; ETSI TS 102 221 v15).
#
# AT+CSIM=<length>,"<command>" where <length> counts hex characters; the answer is
# +CSIM: <length>,"<response incl. SW1 SW2>". The T=0 follow-ups are done here, never left
# to the modem (modems differ):
#   61xx  xx bytes waiting (00 = 256): GET RESPONSE with Le=xx, at most _CHUNK (128) at a time
#         (the card answers the rest as 61yy: ISO 7816-4 5.3.3), keeping CLA's channel bits
#         (TS 102 221 7.3.1.1.4); data followed by another 61xx is followed up too (at most
#         _MAX_GET_RESPONSE times) while the whole answer fits in 256 bytes, else an error.
#         The pieces keep the +CSIM: line under 300 bytes: the AT line buffers stay small.
#   6Cxx  wrong Le: re-send the same command with Le=xx
#   91xx  success with a proactive command pending (SIM Toolkit): treated as 9000
#   6F00  applet exception: the command is retried once
# SW = status word (SW1 SW2), CLA/INS/P1/P2/Lc/Le as in ISO 7816-4 5.1.

from micropython import const

import at
import modem

INS_GET_RESPONSE = const(0xC0)
SW_OK = const(0x9000)
_SW_NO_INFO = const(0x6F00)
_MAX_DATA = const(255)        # Lc: short APDUs only
_RSP_CAP = const(256)
_MAX_GET_RESPONSE = const(4)  # chained 61xx answers followed (each appends to rsp)
_CHUNK = const(128)           # GET RESPONSE Le at most this
_HEX = b"0123456789ABCDEF"


class ApduError(Exception):
    # remote: the card answered a status word we cannot use (self.sw), or the modem refused
    def __init__(self, msg, sw=0):
        super().__init__(msg)
        self.sw = sw


# the +CSIM reply was malformed or missing: handled as any ApduError (retried), so the same
# class (every class costs ~100 B of heap); the name says where it comes from
CsimError = ApduError


class TooLong(ApduError):
    # the answer holds more data than the 256-byte response buffer (61xx past it): not a
    # link fault, retrying cannot help
    pass


def cla_for_channel(ch):
    # TS 102 221 10.1.1: channels 0-3 in b1-b2 of 0x00; 4-19 as 0x40 | (ch - 4)
    if 0 <= ch <= 3:
        return ch
    if 4 <= ch <= 19:
        return 0x40 | (ch - 4)
    raise ValueError("logical channel %d out of range 0-19" % ch)


def _nibble(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def parse_csim(line, n, out, off, prefix=b"+CSIM:"):
    # line[:n] = b'+CSIM: <len>,"<HEX>"' (or +CGLA:, the same shape). Decodes the hex into
    # out[off:], returns the byte count (SW1 SW2 included). Strict: <len> matches the hex,
    # even, >= 4, closing quote last.
    i = 6                      # after '+CSIM:' / '+CGLA:'
    if n < 6 or not at._starts(line, 0, n, prefix):
        raise CsimError("expected %s line" % prefix.decode())
    while i < n and line[i] == 32:
        i += 1
    ln = 0
    d = 0
    while i < n and 48 <= line[i] <= 57 and d < 4:
        ln = ln * 10 + line[i] - 48
        i += 1
        d += 1
    if d == 0 or i + 2 > n or line[i] != 44 or line[i + 1] != 34:
        raise CsimError("bad +CSIM: header")
    i += 2
    if n != i + ln + 1 or line[n - 1] != 34:
        raise CsimError("+CSIM: length %d does not match its data" % ln)
    if ln < 4 or ln & 1:
        raise CsimError("+CSIM: odd or short response (%d hex chars)" % ln)
    nb = ln >> 1
    if off + nb > len(out):
        raise TooLong("+CSIM: response of %d bytes does not fit" % nb)
    for k in range(nb):
        hi = _nibble(line[i])
        lo = _nibble(line[i + 1])
        if hi < 0 or lo < 0:
            raise CsimError("+CSIM: non-hex character")
        out[off + k] = (hi << 4) | lo
        i += 2
    return nb


class Apdu:
    def __init__(self, link, log=None, busy_tries=3, max_data=_MAX_DATA):
        self.link = link
        self.log = log or at.nolog
        self.busy_tries = busy_tries
        self.rsp = bytearray(_RSP_CAP + 2)     # response data + SW1 SW2 (shared buffer)
        self.rsp_len = 0                       # data bytes in rsp (SW excluded)
        self.sw = 0
        self.proactive = False                 # a 91xx was seen: proactive command pending
        # -1: APDUs go through AT+CSIM; else through AT+CGLA on this +CCHO session (TS 27.007
        # 8.43), for modems that refuse MANAGE CHANNEL in AT+CSIM (channel.Channels.open)
        self.session = -1
        # AT+CSIM=<len>,"<hex>" or AT+CGLA=<sid>,<len>,"<hex>" is built in place in the AT
        # engine's command buffer, sized for APDUs of max_data bytes of data (the caller
        # knows its longest: DeviceID, AID, telemetry)
        self.max_data = -1
        self.reserve(max_data)
        self._hdr = bytearray(5)

    def reserve(self, max_data):
        # APDUs of up to max_data bytes of data from now on (grows, never shrinks: a caller
        # with a long APDU only now and then, e.g. the report as telemetry, grows it then)
        if not 0 <= max_data <= _MAX_DATA:
            raise ValueError("max_data must be 0-255")
        if max_data > self.max_data:
            self.max_data = max_data
            self.link.engine.reserve_cmd(_cmd_len(max_data))

    def transmit(self, cla, ins, p1, p2, data=None, le=-1):
        # Sends one command (case 1-4 short APDU), does the T=0 follow-ups. Returns the final
        # SW; response data is in self.rsp[:self.rsp_len] (overwritten by the next call).
        # Raises ApduError on modem errors and malformed replies (CsimError), TooLong past
        # 256 data bytes, SimBusy / SimFatal for +CME ERROR 14 / 10, 13.
        h = self._hdr
        h[0] = cla
        h[1] = ins
        h[2] = p1
        h[3] = p2
        self.rsp_len = 0
        self.proactive = False
        for attempt in range(2):
            sw = self._exchange(h, data, le)
            if sw == _SW_NO_INFO and attempt == 0:
                self.log("SW 6F00 (applet exception): retry once")
                self.rsp_len = 0
                continue
            break
        if sw >> 8 == 0x6C:
            # wrong Le: re-send with Le = SW2 (ISO 7816-4 5.1.3)
            sw = self._exchange(h, data, sw & 0xFF)
        for _ in range(_MAX_GET_RESPONSE):
            if sw >> 8 != 0x61:
                break
            # 61xx: GET RESPONSE on the same channel (CLA kept), Le = xx (00 = 256), in
            # pieces of at most _CHUNK bytes
            h[1] = INS_GET_RESPONSE
            h[2] = 0
            h[3] = 0
            le = sw & 0xFF
            sw = self._exchange(h, None, _CHUNK if le == 0 or le > _CHUNK else le)
        else:
            # only an answer that still says 61xx is too long (the last GET RESPONSE may
            # have ended it with 9000)
            if sw >> 8 == 0x61:
                raise TooLong("response longer than %d bytes" % _RSP_CAP, sw)
        if sw >> 8 == 0x91:
            self.proactive = True
            sw = SW_OK
        self.sw = sw
        return sw

    def _exchange(self, h, data, le):
        # one AT+CSIM round trip; appends the response data to rsp
        nd = 0 if data is None else len(data)
        if nd > self.max_data:
            raise ValueError("APDU data longer than %d bytes" % self.max_data)
        c = self.link.engine.cmd_buffer
        nbytes = 4 + (1 + nd if nd else 0) + (1 if le >= 0 else 0)
        sid = self.session
        if sid < 0:
            c[0:8] = b"AT+CSIM="
            i = 8
            prefix = b"+CSIM:"
        else:
            c[0:8] = b"AT+CGLA="
            i = _put_dec(c, 8, sid)
            c[i] = 44
            i += 1
            prefix = b"+CGLA:"
        i = _put_dec(c, i, 2 * nbytes)
        c[i] = 44
        c[i + 1] = 34
        i += 2
        for k in range(4):
            i = _put_hex(c, i, h[k])
        if nd:
            i = _put_hex(c, i, nd)
            for k in range(nd):
                i = _put_hex(c, i, data[k])
        if le >= 0:
            i = _put_hex(c, i, le & 0xFF)
        c[i] = 34
        i += 1
        link = self.link
        for attempt in range(self.busy_tries):
            r = link.cmd(c, 10000, prefix, i)
            if r == at.OK:
                break
            e = modem.cme_exception(link.engine, "AT+CSIM" if sid < 0 else "AT+CGLA")
            if isinstance(e, modem.SimBusy) and attempt + 1 < self.busy_tries:
                self.log("SIM busy, retry")
                link.clock.sleep_ms(200 << attempt)
                continue
            raise e
        eng = link.engine
        if eng.info_len == 0:
            raise CsimError("OK without a %s line" % prefix.decode())
        off = self.rsp_len
        got = parse_csim(eng.info, eng.info_len, self.rsp, off, prefix)
        # SW1 SW2 are the last two bytes; move them out of the data area
        sw = (self.rsp[off + got - 2] << 8) | self.rsp[off + got - 1]
        self.rsp_len = off + got - 2
        if sw >> 8 == 0x61 and self.rsp_len > off and self.rsp_len >= _RSP_CAP:
            raise TooLong("response longer than %d bytes" % _RSP_CAP, sw)
        return sw


def _cmd_len(nd):
    # AT+CGLA=<sid 5>,<len 4>,"<hex of 5 + nd bytes>" (AT+CSIM is shorter)
    return 21 + 2 * (5 + nd)


def _put_dec(buf, i, v):
    # v (0..9999) in decimal at buf[i:], returns the index after it
    if v >= 1000:
        buf[i] = 48 + v // 1000
        i += 1
    if v >= 100:
        buf[i] = 48 + (v // 100) % 10
        i += 1
    if v >= 10:
        buf[i] = 48 + (v // 10) % 10
        i += 1
    buf[i] = 48 + v % 10
    return i + 1


def _put_hex(buf, i, b):
    buf[i] = _HEX[b >> 4]
    buf[i + 1] = _HEX[b & 15]
    return i + 2


def sw_text(sw):
    return "%04X" % sw
