"""``ztp modem`` command-line checks that need no SIM."""

from click.testing import CliRunner
from ztp.cli import main


def test_modem_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["modem", "--help"])
    assert result.exit_code == 0
    assert "--sim-state" in result.output


def test_modem_command_rejects_bad_dns_entry(tmp_path) -> None:
    state = tmp_path / "sim.json"
    state.write_text("{}")
    result = CliRunner().invoke(main, ["modem", "--sim-state", str(state), "--dns", "noequals"])
    assert result.exit_code != 0
    assert "NAME=IPV4" in result.output


def test_modem_command_has_habit_options(tmp_path) -> None:
    result = CliRunner().invoke(main, ["modem", "--help"])
    for option in ("--rts-off", "--min-command-gap-ms", "--csim-refuse"):
        assert option in result.output
    state = tmp_path / "sim.json"
    state.write_text("{}")
    result = CliRunner().invoke(main, ["modem", "--sim-state", str(state),
                                       "--min-command-gap-ms", "-1"])
    assert result.exit_code != 0
    assert "min_command_gap_ms" in result.output
