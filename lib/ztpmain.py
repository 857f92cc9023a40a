# ztpmain: what main.py runs at power-up (frozen, so nothing of it is compiled at boot).
#
# 1. a window of repl_window_ms (default 2 s) before the watchdog is armed: Ctrl-C there
#    (mpremote does it) ends main.py into the REPL with no watchdog running (the samd port's
#    cannot be stopped once armed, so later a Ctrl-C races a reset)
# 2. the board: PMIC, modem reset line, UART (board.Board), watchdog armed
# 3. the stored configuration applied (boot counter: rolled back if it keeps failing)
# 4. provisioning over the SAFE2 SIM (provision.Provisioner); a failure keeps the old
#    configuration, and so does an unexpected error (logged: a crash here must not reboot-loop)
# 5. the application loop: app() about every 500 ms; after good_after_ms the configuration is
#    confirmed (Applier.mark_good, logged "configuration confirmed"). An exception from app()
#    is not caught: the watchdog resets the board, and a configuration under which the
#    application keeps failing is rolled back after 3 such boots (apply.Applier.boot)
# 6. re-provisioning while the application runs (issue 17): every reprovision_s +- jitter_s
#    seconds (provision.reprovision_delay_ms), logged "re-provisioning". A changed
#    configuration goes the way of one at boot: applied by its handlers, confirmed after
#    good_after_ms, rolled back by the boot counter if the application then keeps failing.
#    A failure, even an exception, is logged and the application goes on. Right after a
#    configuration is confirmed the next run comes at once, so the service hears "confirmed"
#    without waiting a period (one more run per configuration change; none when off).
# Reports to the service (lib/apply.py, issue 17): the pending one in /ztp/report.json goes
# before the next CA 00; "rolled_back" is stored after a rollback at boot, "confirmed" at
# mark_good, the provisioning outcomes by provision.Provisioner.
# Settings: optional JSON object in /ztp/settings.json, keys "profile" ("mkrgsm1400",
# "generic"; default by board.detect), "good_after_ms" (60000), "wdt_ms" (16384: the samd
# maximum, a 16 s period), "repl_window_ms" (2000), "reprovision_s" (86400; 0 = off, at most
# 7 days), "jitter_s" (8640, at most half of reprovision_s); at most 160 bytes. A file that
# cannot be read or parsed is logged and the defaults are used.

import gc
import os
import sys
import time

import apply
import board
import fs
import modem
import provision

ROOT = "/ztp"
_DEFAULTS = (("profile", None), ("good_after_ms", 60000), ("wdt_ms", 16384),
             ("repl_window_ms", 2000), ("reprovision_s", 86400), ("jitter_s", 8640))


def log(msg):
    print("ztp:", msg)


def settings(files, path=ROOT + "/settings.json"):
    # the settings dict: defaults, overridden by the file's known keys of the right type
    s = {}
    for k, v in _DEFAULTS:
        s[k] = v
    buf = bytearray(160)
    try:
        n = fs.read_into(files, path, buf)
        if n < 0:
            return s
        import json
        got = json.loads(bytes(buf[0:n]))
        if not isinstance(got, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        log("%s ignored: %s" % (path, e))
        return s
    for k, v in _DEFAULTS:
        if k in got:
            g = got[k]
            if (isinstance(g, str) if k == "profile" else isinstance(g, int)):
                s[k] = g
            else:
                log("%s: %s ignored (wrong type)" % (path, k))
    return s


def _provisioner(b, files, applier):
    opt = provision.Options(lte=b.profile["lte"], flow_control=b.flow_control)
    prov = provision.Provisioner(modem.Link(b.uart, b.clock), files, applier, b.device_id(),
                                 ROOT + "/channel", opt, b.rng, log, b.modem_power)
    prov.collect = gc.collect
    return prov


def run(app=None):
    gc.collect()
    files = fs.OsFs()
    files.mkdir(ROOT)
    s = settings(files)
    name = s["profile"] or board.detect(os.uname().machine, sys.platform)
    w = s["repl_window_ms"]
    if w > 0:
        log("Ctrl-C within %d ms for the REPL (watchdog not armed yet)" % w)
        time.sleep_ms(w)
    b = board.Board(board.profile(name), s["wdt_ms"], log)
    log("board %s, watchdog %d ms" % (name, board.wdt_period_ms(s["wdt_ms"])))
    good_after = s["good_after_ms"]
    period_s = s["reprovision_s"]
    jitter_s = s["jitter_s"]
    s = None
    applier = apply.Applier(files, ROOT, log, reports=True)
    alarm = b.pin_out("alarm")
    if alarm is not None:
        applier.register("iot:Alarm", apply.PinHandler(alarm))
    # what lives through provisioning is made first, in one go, before the stored
    # configuration's transient objects (fewer holes in the heap); the stored body is read
    # into the provisioner's body buffer (free until READ CONFIG)
    prov = None
    gc.collect()
    try:
        prov = _provisioner(b, files, applier)
        body = prov.body
    except Exception as e:
        log("provisioning not set up: %s: %s" % (type(e).__name__, e))
        body = bytearray(255)
    applier.boot(body)
    body = None
    if prov is not None:
        try:
            if b.modem_power is not None:
                b.modem_power()
            prov.run()
        except Exception as e:
            # a bug or a flash error must not reboot-loop the board: the old configuration
            # stays
            log("provisioning stopped by %s: %s" % (type(e).__name__, e))
    prov = None
    wait = provision.reprovision_delay_ms(period_s, jitter_s, b.rng)   # ms, -1 = off
    t0 = time.ticks_ms()
    last = t0
    confirmed = False
    while True:
        if app is not None:
            app()
        b.feed()
        now = time.ticks_ms()
        if not confirmed and time.ticks_diff(now, t0) > good_after:
            confirmed = True
            if applier.mark_good() and wait > 0:
                wait = 0        # "confirmed" is pending: the service hears it now
            log("configuration confirmed")
        if wait >= 0:
            wait -= time.ticks_diff(now, last)
            if wait <= 0:
                log("re-provisioning")
                gc.collect()
                try:
                    if _provisioner(b, files, applier).run() == provision.OK:
                        # a new configuration on trial: confirmed after good_after, as at boot
                        t0 = time.ticks_ms()
                        confirmed = False
                except Exception as e:
                    # never stops the application: what is in force stays
                    log("re-provisioning stopped by %s: %s" % (type(e).__name__, e))
                gc.collect()
                wait = provision.reprovision_delay_ms(period_s, jitter_s, b.rng)
                now = time.ticks_ms()
        last = now
        time.sleep_ms(500)
