# main.py: runs at every power-up, after boot.py. Zero-touch provisioning comes first (the
# frozen module ztpmain: board, stored configuration, provisioning over the SAFE2 SIM), then
# ztpmain calls app() about every 500 ms for ever. Your application goes in app(); this file
# stays on the board's flash, so it can be changed without rebuilding the firmware:
#     mpremote cp main.py :main.py
# Settings (board profile, watchdog, confirm delay, REPL window): /ztp/settings.json, see
# lib/ztpmain.py. Ctrl-C in the first 2 s after reset gives the REPL with no watchdog armed.
import ztpmain


def app():
    # the application's own work; the configuration in force was applied by its handlers
    pass


ztpmain.run(app)
