# apply: persist a validated configuration atomically and hand it to the application.
#
# Files under root (flash):
#   config.json   the configuration in force (the exact body bytes from the SIM)
#   config.prev   the one before it, kept for rollback
#   config.bad    the last body rolled back (not applied again)
#   config.json.tmp  a write in progress (removed on error, ignored at boot)
#   trial         boot counter of a configuration not yet confirmed good
# Order of a new configuration: every action is checked by its handler (dry run) -> trial = 0
# (temp + rename) -> rename config.json -> config.prev -> write config.json.tmp -> rename
# tmp -> config.json -> handlers commit. A crash or write error before the last rename leaves
# the old configuration in force (apply() undoes what it did; boot() finishes or undoes a
# half-done rename), and the new one is never in force without its trial counter (a crash
# just after trial = 0 only asks the old one to be confirmed again). Bodies equal, byte for
# byte, to config.json are not applied again.
# Rollback: boot() counts boots in trial; after max_boots starts without mark_good(), or when
# the stored configuration fails to apply at start, config.prev is restored.
# Handlers: handler(effect, commit) for an action name (e.g. "iot:Alarm"); commit=False only
# checks and raises ValueError for an effect it cannot do. settings_handler(dict, commit) for
# flat settings objects. A configuration with a part no handler takes is rejected (ApplyError,
# "no handler for ..."), settings included: see docs/firmware.md.
# What is in force: digest (config.digest of config.json, None = no configuration) and version
# (its "version" or None), kept up to date by every path that changes config.json, for the
# report to the service.
#
# Report to the service (issue 17; Applier(reports=True), lib/ztpmain.py): report.json holds
# the one pending report, written atomically like the configuration (the newest replaces it).
# boot() stores "rolled_back" after a rollback, mark_good() "confirmed" (the owner provisions
# after either, so they go at once: lib/ztpmain.py); provision.Provisioner stores the provisioning
# outcomes and sends the pending report as SAFE2 telemetry before the next CA 00
# (drop_report() once the service answered). A flash error here is logged and never stops
# anything: a report is worth less than the configuration it describes.
# The document (build_report), one compact JSON object, keys always in this order:
#   {"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,
#    "rejected":"crc32:...","version":"2021-05-31"}
#   v         1 (this format; the service parses it strictly: change both together)
#   digest    config.digest() of the body in force after the event, null when there is none:
#             "in sync" = it equals the digest of the body the service delivered
#   outcome   applied | unchanged | rejected | rolled_back | confirmed
#   code      the provisioning result code (provision.py): 0 applied, 1 unchanged, 40 / 41 /
#             42 rejected; 0 for rolled_back and confirmed
#   rejected  only with "rejected", when a body was read: the digest of the body turned down
#   version   only when the body in force has a "version" of printable ASCII without '"' and
#             '\' (config.py: 1-32 characters); any other is left out (no escapes needed)
# At most 140 bytes (rejected with both digests, code 42, a 32-character version): C1 takes 255.

from micropython import const

import at as _at
import config as _config
import fs as _fs

APPLIED = const(0)
UNCHANGED = const(1)
_MAX_BOOTS = const(3)
_MAX_BODY = const(255)      # SAFE2-PROTOCOL.md: the device accepts up to 255 bytes
_MAX_REPORT = const(160)    # a pending report file larger than this is dropped


def build_report(outcome, code, digest, version=None, rejected=None):
    # -> the report document (bytes): see the top of the module
    if version and len(version) > 32:
        version = None
    if version:
        for ch in version:
            o = ord(ch)
            if o < 32 or o > 126 or o == 34 or o == 92:
                version = None      # it would need an escape: left out
                break
    return ('{"v":1,"digest":%s,"outcome":"%s","code":%d%s%s}' % (
        '"%s"' % digest if digest else "null", outcome, code,
        ',"rejected":"%s"' % rejected if rejected else "",
        ',"version":"%s"' % version if version else "")).encode()


class ApplyError(Exception):
    # the configuration was valid JSON but cannot be applied (no handler, bad effect, write
    # error); the old configuration is still in force
    pass


class Applier:
    def __init__(self, fs, root, log=None, max_boots=_MAX_BOOTS, reports=False):
        self.fs = fs
        self.log = log or _at.nolog
        self.max_boots = max_boots
        self.current = root + "/config.json"
        self.prev = root + "/config.prev"
        self.bad = root + "/config.bad"
        self.trial = root + "/trial"
        self.handlers = {}
        self.settings_handler = None
        self._chunk = bytearray(32)
        self.digest = None
        self.version = None
        self.report = root + "/report.json" if reports else None
        self._report_doc = None

    def register(self, action, handler):
        self.handlers[action] = handler

    # --- new configuration ----------------------------------------------------------------
    def same_as(self, path, body, n):
        # is the file at path byte-for-byte body[:n]? (chunked: no big temporaries)
        fs = self.fs
        if not fs.exists(path):
            return False
        f = fs.open(path, "rb")
        try:
            off = 0
            c = self._chunk
            while True:
                k = f.readinto(c)
                if not k:
                    return off == n
                if off + k > n:
                    return False
                for i in range(k):
                    if c[i] != body[off + i]:
                        return False
                off += k
        finally:
            f.close()

    def apply(self, body, n, cfg):
        # body[:n]: the raw bytes; cfg: its config.Config. Returns APPLIED or UNCHANGED.
        # Raises ApplyError with the old configuration still in force.
        if self.same_as(self.current, body, n):
            self.log("configuration unchanged: not applied again")
            self.digest = _config.digest(body, n)
            self.version = cfg.version
            return UNCHANGED
        if self.same_as(self.bad, body, n):
            raise ApplyError("configuration was rolled back before: not applied again")
        self._check(cfg, False)
        fs = self.fs
        had_current = fs.exists(self.current)
        old_trial = _fs.read_small_int(fs, self.trial, 0) if fs.exists(self.trial) else -1
        try:
            if fs.exists(self.current + ".tmp"):
                fs.remove(self.current + ".tmp")
            # the trial counter first: the new configuration is never in force without it
            # (no counter = no boot-counter rollback), whatever fails after this
            _fs.write_atomic(fs, self.trial, b"0")
            if had_current:
                fs.rename(self.current, self.prev)
            _fs.write_atomic(fs, self.current, body, n)
        except OSError as e:
            self._undo(had_current, old_trial)
            raise ApplyError("writing the configuration failed (%s): old one kept" % e)
        try:
            self._check(cfg, True)
        except Exception as e:
            self.log("applying failed (%s): rolling back" % e)
            try:
                self.rollback()
            except OSError as e2:
                self.log("rollback interrupted (%s): finished at the next boot" % e2)
            self._restore_handlers()
            raise ApplyError("applying failed: %s" % e)
        self.digest = _config.digest(body, n)
        self.version = cfg.version
        self.log("configuration applied (%d bytes%s)"
                  % (n, ", version " + cfg.version if cfg.version else ""))
        return APPLIED

    def _undo(self, had_current, old_trial):
        # a write of a new configuration failed: put the old one back. config.prev replaces
        # whatever reached config.json (with no old configuration, a new config.json goes)
        # and the trial counter gets its old state (-1 = none). If a step fails too (flash
        # failing), the next boot is still safe: recover() takes config.prev when config.json
        # is missing, and a counter left at 0 only asks the old configuration to be
        # confirmed again.
        fs = self.fs
        try:
            if had_current and not fs.exists(self.current):
                # config.json -> config.prev was done (the new config.json never arrived)
                fs.rename(self.prev, self.current)
            elif not had_current and fs.exists(self.current):
                fs.remove(self.current)
        except OSError as e:
            self.log("undo interrupted (%s): finished at the next boot" % e)
        try:
            if old_trial < 0:
                if fs.exists(self.trial):
                    fs.remove(self.trial)
            else:
                _fs.write_atomic(fs, self.trial, str(old_trial).encode())
        except OSError as e:
            self.log("boot counter not restored (%s)" % e)

    def _restore_handlers(self):
        # a commit failed part-way: the handlers may hold half of the new configuration, so
        # the configuration now in force (the previous one) is committed to them again.
        # Failure path only: its buffer is allocated here, not kept.
        try:
            n, cfg = self.load(bytearray(_MAX_BODY))
            if cfg is not None:
                self._check(cfg, True)
        except Exception as e:
            self.log("re-applying the previous configuration failed: %s" % e)

    def _check(self, cfg, commit):
        # every part of cfg goes to its handler; a part nobody handles is rejected (a settings
        # object with no settings_handler as much as an action with no handler: "applied"
        # must mean something took it)
        if cfg.kind == _config.KIND_SETTINGS:
            self._run(self.settings_handler, cfg.settings, commit, "settings")
            return
        for a, e in cfg.actions:
            self._run(self.handlers.get(a), e, commit, a)

    def _run(self, h, arg, commit, what):
        if h is None:
            raise ApplyError("no handler for %s%s"
                             % ("" if what == "settings" else "action ", what))
        try:
            h(arg, commit)
        except ValueError as e:
            raise ApplyError("%s: %s" % (what, e))

    # --- boot and rollback ------------------------------------------------------------------
    def recover(self):
        # finish or undo what a crash interrupted (see the order above)
        fs = self.fs
        if fs.exists(self.current + ".tmp"):
            fs.remove(self.current + ".tmp")
        if not fs.exists(self.current) and fs.exists(self.prev):
            # crashed between "config.json -> config.prev" and the new config.json, or in
            # the middle of a rollback: either way the previous configuration is the one
            fs.rename(self.prev, self.current)
            self.log("recovered the previous configuration after an interrupted write")

    def load(self, buf):
        # the configuration in force -> (n, cfg) with the body in buf[:n], or (-1, None);
        # digest and version follow it (None until it parses)
        self.digest = None
        self.version = None
        n = _fs.read_into(self.fs, self.current, buf)
        if n < 0:
            return -1, None
        cfg = _config.parse_config(buf, n)
        self.digest = _config.digest(buf, n)
        self.version = cfg.version
        return n, cfg

    def boot(self, buf):
        # At start: recover, count the boot of an unconfirmed configuration, apply the stored
        # configuration to the handlers (rolling back when it fails). buf: >= 255 bytes.
        # Returns the config.Config in force, or None.
        # Never raises: a flash error is logged and the application starts anyway (with the
        # configuration that could be loaded, or None).
        fs = self.fs
        rolled_back = False
        try:
            self.recover()
            if fs.exists(self.trial):
                count = _fs.read_small_int(fs, self.trial, self.max_boots) + 1
                if count > self.max_boots:
                    self.log("configuration not confirmed after %d boots: rolling back"
                              % (count - 1))
                    rolled_back = True
                    self.rollback()
                else:
                    _fs.write_atomic(fs, self.trial, str(count).encode())
        except OSError as e:
            self.log("boot counter: flash error (%s)" % e)
        cfg = None
        for _ in range(2):
            try:
                n, cfg = self.load(buf)
                if cfg is not None:
                    self._check(cfg, True)
                break
            except (ApplyError, _config.ConfigError, OSError, ValueError) as e:
                self.log("stored configuration fails at start (%s): rolling back" % e)
                cfg = None
                rolled_back = True
                try:
                    self.rollback()
                except OSError as e2:
                    self.log("rollback: flash error (%s)" % e2)
                    break
        if rolled_back:
            # the owner provisions next: the report goes at once
            self.store_report("rolled_back", 0)
        return cfg

    def mark_good(self):
        # the application ran well with the new configuration: keep it. True when a
        # configuration on trial was confirmed ("confirmed" is then the pending report);
        # False: nothing was waiting for it
        if self.fs.exists(self.trial):
            self.fs.remove(self.trial)
            self.store_report("confirmed", 0)
            return True
        return False

    # --- the report to the service (see the top of the module) ---------------------------------
    def store_report(self, outcome, code, rejected=None, if_none=False):
        # the report of outcome on what is in force becomes the pending one (if_none: only
        # when none is pending); never raises
        if self.report is None or (if_none and self.pending_report() is not None):
            return
        doc = build_report(outcome, code, self.digest, self.version, rejected)
        try:
            _fs.write_atomic(self.fs, self.report, doc)
            self._report_doc = doc
        except OSError as e:
            self._report_doc = None     # the file holds what it held: read it again
            self.log("report not stored (%s)" % e)

    def pending_report(self):
        # -> the pending report (bytes) or None; a file that cannot be one is removed. The
        # file is read once: what this Applier writes and reads is kept (_report_doc: None =
        # not known yet, b"" = none pending), so a provisioning run that follows finds it
        # without another file object or buffer on the heap
        doc = self._report_doc
        if doc is None:
            doc = b""
            if self.report is not None and self.fs.exists(self.report):
                doc = self._read_report()
            self._report_doc = doc
        return doc or None

    def _read_report(self):
        buf = bytearray(_MAX_REPORT)
        try:
            n = _fs.read_into(self.fs, self.report, buf)
            if n > 0 and buf[0] == 123:     # '{'
                return bytes(buf[0:n])
            e = "not a JSON object"
        except (OSError, ValueError) as x:
            e = x
        self.log("pending report dropped (%s)" % e)
        self.drop_report()
        return b""

    def drop_report(self):
        # the pending report was delivered (or is damaged); never raises
        self._report_doc = b""
        try:
            if self.report is not None and self.fs.exists(self.report):
                self.fs.remove(self.report)
        except OSError as e:
            self._report_doc = None
            self.log("report not removed (%s): sent again" % e)

    def rollback(self):
        fs = self.fs
        if fs.exists(self.current):
            fs.rename(self.current, self.bad)
        if fs.exists(self.prev):
            fs.rename(self.prev, self.current)
            self.log("rolled back to the previous configuration")
        if fs.exists(self.trial):
            fs.remove(self.trial)


class PinHandler:
    # an output pin driven by an action's effect ("On" / "Off"), e.g. iot:Alarm. pin: an object
    # with value(v) (machine.Pin on the board).
    def __init__(self, pin, on="On", off="Off"):
        self.pin = pin
        self.on = on
        self.off = off

    def __call__(self, effect, commit):
        if effect == self.on:
            v = 1
        elif effect == self.off:
            v = 0
        else:
            raise ValueError("effect must be %s or %s, got %s" % (self.on, self.off, effect))
        if commit:
            self.pin.value(v)
