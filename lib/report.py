# report: what the device tells the service about its configuration (issue 17), sent as SAFE2
# telemetry (DA 02 C1, SAFE2-PROTOCOL.md "APDUs"), which the SIM POSTs to
# /v1/data/{DEVICEID}?iccid=... Format and timing: docs/firmware.md "Reporting what was
# applied"; the service parses it strictly, so change both together (and bump "v").
#
# A report is one compact JSON object, keys always in this order, no whitespace:
#   {"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,
#    "rejected":"crc32:...","version":"2021-05-31"}
#   v         1 (this format)
#   digest    config.digest() of the body in force after the event ("crc32:" + 8 lowercase
#             hex digits), null when the device holds none: "in sync" = this equals the
#             digest of the body the service delivered
#   outcome   applied | unchanged | rejected | rolled_back | confirmed
#   code      the provisioning result code (lib/provision.py): 0 applied, 1 unchanged,
#             40 / 41 / 42 rejected; 0 for rolled_back and confirmed
#   rejected  only with "rejected", when a body was read: the digest of the body turned down
#   version   only when the body in force has a "version" of printable ASCII without '"' and
#             '\' (1-32 characters: lib/config.py); any other version is left out, so the
#             document never needs an escape
# At most MAX_REPORT bytes (the longest: rolled_back/rejected with both digests, a 32-character
# version and code 42: 140 bytes), well inside C1's 255.
#
# The newest report wins: one pending report at a time, in one small file written atomically
# (fs.write_atomic, as the configuration), sent before the next CA 00 and removed once the SIM
# showed that its request reached the service (lib/provision.py). Flash errors are logged and
# never stop provisioning: a report is worth less than the configuration it describes.

from micropython import const

import at as _at
import fs as _fs

MAX_REPORT = const(160)

APPLIED = "applied"
UNCHANGED = "unchanged"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"
CONFIRMED = "confirmed"


def _plain(s):
    # version text that goes into JSON as is: printable ASCII without '"' and '\'
    for ch in s:
        o = ord(ch)
        if o < 32 or o > 126 or o == 34 or o == 92:
            return False
    return True


def build_report(outcome, code, digest, version=None, rejected=None):
    # -> the report document (bytes), see the top of the module
    doc = '{"v":1,"digest":%s,"outcome":"%s","code":%d' % (
        '"%s"' % digest if digest else "null", outcome, code)
    if rejected:
        doc += ',"rejected":"%s"' % rejected
    if version and len(version) <= 32 and _plain(version):
        doc += ',"version":"%s"' % version
    return (doc + "}").encode()


class Reports:
    # the pending report in flash at path (fs: fs.OsFs-like); log(str)
    def __init__(self, fs, path, log=None):
        self.fs = fs
        self.path = path
        self.log = log or _at.nolog

    def store(self, doc):
        # doc replaces any pending report; never raises (flash errors are logged)
        try:
            _fs.write_atomic(self.fs, self.path, doc)
        except OSError as e:
            self.log("report not stored (%s)" % e)

    def pending(self):
        try:
            return self.fs.exists(self.path)
        except OSError:
            return False

    def load(self):
        # the pending report (bytes) or None; a file that cannot be a report is removed
        buf = bytearray(MAX_REPORT)
        try:
            n = _fs.read_into(self.fs, self.path, buf)
            if n < 0:
                return None
            if n > 0 and buf[0] == 123:     # '{'
                return bytes(buf[0:n])
            e = "not a JSON object"
        except (OSError, ValueError) as x:
            e = x
        self.log("pending report dropped (%s)" % e)
        self.remove()
        return None

    def remove(self):
        try:
            if self.fs.exists(self.path):
                self.fs.remove(self.path)
        except OSError as e:
            self.log("report not removed (%s): sent again" % e)
