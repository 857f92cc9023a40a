# MicroPython-side test driver (runs inside the MicroPython WASI runtime, not under CPython):
# imports the plain test modules, runs every test_* function, prints one line per test and
# a pytest-like summary; then measures one whole provisioning's heap use.
# The host (ztp.device._mpy) stages /input/lib (*.mpy from mpy-cross) and /input/tests.
# ruff: noqa: UP031 (MicroPython has no f-strings)
import gc
import sys

import micropython

sys.path.insert(0, "/input/tests")
sys.path.insert(0, "/input/lib")

MODULES = __MODULES__  # noqa: F821 (substituted by the host)


def run_tests():
    passed = 0
    failed = 0
    for name in MODULES:
        mod = __import__(name)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            try:
                fn()
                passed += 1
                print("PASS %s.%s" % (name, attr))
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
                sys.print_exception(e)
            # gc.collect()
    print("micropython: %d passed, %d failed" % (passed, failed))


_fake = [0]


def _meter(cls, name):
    # wraps cls.name so that heap allocated inside the test double is counted apart from
    # the firmware's (the *a tuple is allocated before the count starts: it is charged to
    # the firmware, so the firmware figure is an upper bound)
    f = getattr(cls, name)

    def g(self, *a):
        b = gc.mem_alloc()
        r = f(self, *a)
        _fake[0] += gc.mem_alloc() - b
        return r

    setattr(cls, name, g)


def measure_setup():
    import fw_fakes

    for cls, name in ((fw_fakes.FakeModem, "write"), (fw_fakes.FakeModem, "any"),
                      (fw_fakes.FakeModem, "readinto"), (fw_fakes.RamFs, "open"),
                      (fw_fakes.RamFs, "rename"), (fw_fakes.RamFs, "remove"),
                      (fw_fakes.RamFs, "exists"), (fw_fakes._RamFile, "write"),
                      (fw_fakes._RamFile, "readinto"), (fw_fakes._RamFile, "read"),
                      (fw_fakes._RamFile, "close"), (fw_fakes.FakePin, "value")):
        _meter(cls, name)


# No try/except around this: gc.collect() inside a try block or a nested function traps
# this WASI build; a failure exits non-zero and the host reports it.
if "__MODE__" == "tests":
    run_tests()
else:
    # top-level code: a gc.collect() from inside functions traps this WASI build
    import apply
    import fw_fakes
    import modem
    import provision

    measure_setup()
    clock, sim, m, fs = fw_fakes.make_rig(done_after_ms=2000)
    pin = fw_fakes.FakePin()
    gc.collect()
    gc.disable()
    base = gc.mem_alloc()
    applier = apply.Applier(fs, "/ztp", None)
    applier.register("iot:Alarm", apply.PinHandler(pin))
    link = modem.Link(m, clock)
    opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000)
    p = provision.Provisioner(link, fs, applier, bytes(range(16)), "/ztp/channel", opt,
                              fw_fakes.rng, None)
    code = p.run()
    total = gc.mem_alloc() - base
    gc.enable()
    print("measure: result %s, %d APDUs, %d polls"
          % (provision.RESULT_NAMES[code], len(sim.log), p.polls))
    print("measure: firmware_alloc_bytes=%d fake_alloc_bytes=%d"
          % (total - _fake[0], _fake[0]))
    gc.collect()
    print("measure: live_after_bytes=%d" % (gc.mem_alloc() - base))
    micropython.mem_info()
