"""The firmware as the board runs it: the MKR GSM 1400 image (samd port, frozen lib/) and the
board-faithful heap run (the same frozen modules in a 32-bit MicroPython unix build)."""
