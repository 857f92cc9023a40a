# channel: logical channels on the SIM (ISO 7816-4 7.1.2 MANAGE CHANNEL; ETSI TS 102 221 v15
# 11.1.17) and SELECT by AID (TS 102 221 11.1.1).
#
# The modem keeps logical channels across an MCU reset, so a channel opened before a crash
# stays open and, after three crashes, no channel is free. The number of the open channel is
# written to flash right after MANAGE CHANNEL open and removed after close; at boot a
# remembered channel is closed first. No free channel (6881 / 6A81) -> the caller resets the
# modem.
# Modems that refuse MANAGE CHANNEL through AT+CSIM (+CME ERROR / ERROR): the channel is then
# opened with AT+CCHO="<AID>" (TS 27.007 8.45: the modem opens a channel and selects the AID
# on it, answering the session id: "+CCHO: <n>", or a bare "<n>" on some modems), every APDU
# goes through AT+CGLA on that session (apdu.Apdu.session) and AT+CCHC closes it. The session
# is remembered in flash as "s<n>".

from micropython import const

import apdu as _apdu
import at as _at
import fs as _fs
import modem as _modem

_INS_MANAGE_CHANNEL = const(0x70)
_INS_SELECT = const(0xA4)
_P1_SELECT_BY_AID = const(0x04)
_P2_NO_DATA = const(0x0C)          # no FCI returned (TS 102 221 11.1.1.2)
_P1_CLOSE = const(0x80)
_SW_NO_CHANNEL = const(0x6881)     # logical channel not supported
_SW_FUNC_NOT_SUPP = const(0x6A81)  # function not supported (no free channel)
_SW_NOT_FOUND = const(0x6A82)      # file / application not found
_CME_MEMORY_FULL = const(20)       # TS 27.007 9.2: AT+CCHO with no free channel (taken as)

# SAFE2 AID = F0 + ASCII "podgsafe2" + 01 01 (SAFE2-PROTOCOL.md)
SAFE2_AID = b"\xf0podgsafe2\x01\x01"


class NoFreeChannel(_apdu.ApduError):
    pass


class AppletMissing(_apdu.ApduError):
    pass


class Channels:
    def __init__(self, apdu, fs, path, log=None):
        self.apdu = apdu
        self.fs = fs
        self.path = path          # file holding the open channel's number
        self.log = log or _at.nolog
        self.open_channel = 0     # 0 = none open by us
        self.session = -1         # AT+CCHO session id, -1 = none

    def open(self, aid=None):
        # MANAGE CHANNEL open, card assigns: 00 70 00 00 01 -> N 90 00. Returns the channel
        # number, or 0 when the modem refused it and AT+CCHO opened a session on aid (then
        # already selected; CLA 0x00 with AT+CGLA: the modem routes by session)
        a = self.apdu
        try:
            sw = a.transmit(0x00, _INS_MANAGE_CHANNEL, 0x00, 0x00, None, 1)
        except _modem.ModemError as e:
            if aid is None or isinstance(e, (_modem.SimBusy, _modem.SimFatal,
                                             _modem.ModemTimeout)):
                raise
            self.log("MANAGE CHANNEL refused by the modem (%s): AT+CCHO" % e)
            return self._open_ccho(aid)
        if sw == _SW_NO_CHANNEL or sw == _SW_FUNC_NOT_SUPP:
            raise NoFreeChannel("MANAGE CHANNEL open: no free channel (SW %04X)" % sw, sw)
        if sw != _apdu.SW_OK:
            raise _apdu.ApduError("MANAGE CHANNEL open: expected SW 9000, got %04X" % sw, sw)
        if a.rsp_len != 1 or not 1 <= a.rsp[0] <= 19:
            raise _apdu.ApduError("MANAGE CHANNEL open: expected 1 byte channel 1-19, got %d "
                                  "bytes" % a.rsp_len, sw)
        n = a.rsp[0]
        self.open_channel = n
        self._remember(str(n))
        self.log("channel %d open" % n)
        return n

    def _open_ccho(self, aid):
        link = self.apdu.link
        cmd = bytearray(b'AT+CCHO="')
        for b in aid:
            cmd.extend(b"%02X" % b)
        cmd.extend(b'"')
        # "+CCHO: <n>" or a bare "<n>": take the first information line
        r = link.cmd(cmd, 10000, b"")
        eng = link.engine
        if r != _at.OK:
            if r == _at.CME_ERROR and eng.cme == _CME_MEMORY_FULL:
                raise NoFreeChannel("AT+CCHO: no free channel (+CME ERROR: 20)")
            raise _modem.cme_exception(eng, "AT+CCHO")
        info = eng.info
        i = 6 if _at._starts(info, 0, eng.info_len, b"+CCHO:") else 0
        sid = _at.parse_int(info, i, eng.info_len)
        if sid < 0:
            raise _apdu.ApduError("AT+CCHO: no session id in the answer")
        self.apdu.session = sid
        self.session = sid
        self._remember("s%d" % sid)
        self.log("session %d open (AT+CCHO)" % sid)
        return 0

    def select(self, aid):
        # SELECT by AID on the open channel, P2=0C: 9000 (or 61xx answered by GET RESPONSE);
        # nothing to do on an AT+CCHO session (the modem selected it)
        if self.session >= 0:
            return
        a = self.apdu
        sw = a.transmit(_apdu.cla_for_channel(self.open_channel), _INS_SELECT,
                        _P1_SELECT_BY_AID, _P2_NO_DATA, aid)
        if sw == _SW_NOT_FOUND:
            raise AppletMissing("SELECT SAFE2: applet not found (SW 6A82)", sw)
        if sw != _apdu.SW_OK:
            raise _apdu.ApduError("SELECT SAFE2: expected SW 9000, got %04X" % sw, sw)

    def close(self, n=0, stale=False):
        # MANAGE CHANNEL close: 00 70 80 0N 00 (SAFE2-PROTOCOL.md). Forgotten when closed, and
        # when the card says the channel is not open (6881 / 6A81); any other refusal keeps it
        # remembered so the next boot closes it again (stale=True: that retry, forgotten
        # whatever the answer, so a card that never closes it costs one APDU per boot only).
        if self.session >= 0:
            return self.close_session(self.session, stale)
        if n == 0:
            n = self.open_channel
        if n == 0:
            return
        try:
            sw = self.apdu.transmit(0x00, _INS_MANAGE_CHANNEL, _P1_CLOSE, n, None, 0)
        finally:
            self.open_channel = 0
        if sw != _apdu.SW_OK:
            self.log("MANAGE CHANNEL close %d: SW %04X" % (n, sw))
            if not stale and sw != _SW_NO_CHANNEL and sw != _SW_FUNC_NOT_SUPP:
                return
        self._forget()
        self.log("channel %d closed" % n)

    def close_session(self, sid, stale=False):
        # AT+CCHC=<sid> (TS 27.007 8.46); remembered unless closed (stale: forgotten anyway)
        self.session = -1
        self.apdu.session = -1
        link = self.apdu.link
        r = link.cmd(b"AT+CCHC=%d" % sid, 5000)
        if r != _at.OK and not stale:
            self.log("AT+CCHC=%d refused: kept for the next boot" % sid)
            return
        self._forget()
        self.log("session %d closed" % sid)

    def close_stale(self):
        # boot: close the channel (or AT+CCHO session) a crash left open (remembered in flash)
        b = bytearray(8)
        try:
            k = _fs.read_into(self.fs, self.path, b)
        except (OSError, ValueError):
            k = -1
        if k > 1 and b[0] == 115:             # "s<n>": an AT+CCHO session
            sid = _at.parse_int(b, 1, k)
            if sid >= 0:
                self.log("closing session %d left open by a previous run" % sid)
                self.close_session(sid, True)
                return
        n = _at.parse_int(b, 0, k) if k > 0 else -1
        if 1 <= n <= 19:
            self.log("closing channel %d left open by a previous run" % n)
            self.close(n, True)
        elif self.fs.exists(self.path):
            self._forget()

    def _remember(self, what):
        # best effort: if flash fails, this run still closes the channel on every exit path;
        # only a crash before that would leave it open (then the modem reset frees it)
        try:
            _fs.write_atomic(self.fs, self.path, what.encode())
        except OSError as e:
            self.log("cannot remember channel %s (%s)" % (what, e))

    def _forget(self):
        try:
            self.fs.remove(self.path)
        except OSError:
            pass

