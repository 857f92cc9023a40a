# Findings of the end-to-end tests (host_tests/e2e), fixed in lib/provision.py.
#
# A stray result code from the modem must not leave every later command reading the reply of
# the one before it: a retry starts by draining what arrived late (lib/provision.py run()).
# Found by the end-to-end tests (host_tests/e2e: modem garbage mid-flow). Plain test_*
# functions: pytest and the MicroPython runner both run them.

import apply
import fw_fakes
import modem
import provision


class _StrayOk(fw_fakes.FakeModem):
    # sends a stray "OK" line just before the reply to the first CA 00 (start request)
    def __init__(self, clock, sim):
        fw_fakes.FakeModem.__init__(self, clock, sim)
        self.strays = 1

    def _csim(self, line):
        if self.strays and line.find(b"CA000000") >= 0:
            self.strays -= 1
            self.garbage_before = b"\r\nOK\r\n"
        return fw_fakes.FakeModem._csim(self, line)


def test_stray_result_code_then_retry_resyncs():
    clock = fw_fakes.FakeClock(1000)
    sim = fw_fakes.FakeSim(clock, fw_fakes.REFERENCE_BODY, done_after_ms=1000)
    m = _StrayOk(clock, sim)
    fs = fw_fakes.RamFs()
    applier = apply.Applier(fs, "/ztp", None)
    pin = fw_fakes.FakePin()
    applier.register("iot:Alarm", apply.PinHandler(pin))
    link = modem.Link(m, clock)
    p = provision.Provisioner(link, fs, applier, bytes(range(16)), "/ztp/channel",
                              provision.Options(backoff_ms=100), fw_fakes.rng, None)
    assert p.run() == provision.OK
    assert m.strays == 0
    assert pin.v == 1
    assert fs.files["/ztp/config.json"] == fw_fakes.REFERENCE_BODY


def test_http_404_from_the_sim_is_no_configuration():
    # docs/sim.md: the gateway's 404 ("no configuration for this device") reaches the device
    # as status 000F with result 0194; the device reports E_NO_CONFIG, not a failed request
    clock, sim, m, fs = fw_fakes.make_rig(done_after_ms=500, state=0x000F, result=0x0194)
    applier = apply.Applier(fs, "/ztp", None)
    link = modem.Link(m, clock)
    p = provision.Provisioner(link, fs, applier, bytes(range(16)), "/ztp/channel",
                              provision.Options(backoff_ms=100), fw_fakes.rng, None)
    assert p.run() == provision.E_NO_CONFIG
    assert "no configuration" in p.detail
    assert "/ztp/config.json" not in fs.files

