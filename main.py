# main.py: zero-touch provisioning at boot, then the application loop.
#
# 1. apply the stored configuration (boot counter: rolled back if it keeps failing at start)
# 2. provision over the SAFE2 SIM (see lib/provision.py); a failure keeps the old configuration
# 3. application loop; after it ran well for a while the configuration is confirmed (mark_good)
import time

import apply
import board
import fs
import modem
import provision

_ROOT = "/ztp"
_GOOD_AFTER_MS = 60000


def log(msg):
    print("ztp:", msg)


def main(profile_name="mkrgsm1400"):
    b = board.Board(board.PROFILES[profile_name], 16000, log)
    files = fs.OsFs()
    files.mkdir(_ROOT)
    applier = apply.Applier(files, _ROOT, log)
    alarm = b.pin_out("alarm")
    if alarm is not None:
        applier.register("iot:Alarm", apply.PinHandler(alarm))
    body = bytearray(255)
    applier.boot(body)
    body = None
    b.power_on_modem()
    link = modem.Link(b.uart, b.clock)
    opt = provision.Options(lte=b.profile["lte"], flow_control=b.flow_control)
    prov = provision.Provisioner(link, files, applier, b.device_id(), _ROOT + "/channel",
                                 opt, b.rng, log, None)
    prov.run()
    t0 = time.ticks_ms()
    confirmed = False
    while True:
        # the application's own work goes here
        b.feed()
        if not confirmed and time.ticks_diff(time.ticks_ms(), t0) > _GOOD_AFTER_MS:
            applier.mark_good()
            confirmed = True
        time.sleep_ms(500)


main()
