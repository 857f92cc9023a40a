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


def run_one(name, mod, attr):
    # -> 1 if the test passed, 0 if it failed
    try:
        getattr(mod, attr)()
        print("PASS %s.%s" % (name, attr))
        return 1
    except Exception as e:
        print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
        sys.print_exception(e)
        return 0


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
    # Top-level code, while loops, all state in globals: this WASI build's collector frees
    # objects held only on the VM stack (a for loop's iterator, a function's locals), so it
    # runs only here, between tests, when nothing lives there. Without it the garbage of
    # many tests would pile up until an automatic collection inside a test traps the VM.
    _passed = 0
    _failed = 0
    _mi = 0
    while _mi < len(MODULES):
        _name = MODULES[_mi]
        _mod = __import__(_name)
        _attrs = sorted(dir(_mod))
        _ti = 0
        while _ti < len(_attrs):
            _attr = _attrs[_ti]
            _ti += 1
            if _attr.startswith("test_"):
                _ok = run_one(_name, _mod, _attr)
                _passed += _ok
                _failed += 1 - _ok
                gc.collect()
        _mi += 1
    print("micropython: %d passed, %d failed" % (_passed, _failed))
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
          % (provision.result_name(code), len(sim.log), p.polls))
    print("measure: firmware_alloc_bytes=%d fake_alloc_bytes=%d"
          % (total - _fake[0], _fake[0]))
    gc.collect()
    print("measure: live_after_bytes=%d" % (gc.mem_alloc() - base))
    micropython.mem_info()
