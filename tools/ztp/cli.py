"""The `ztp` command.

Each role keeps its commands in its own module; they are imported only when used, so
`ztp --help` stays fast and a role's heavy dependencies load only for that role.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "sim": "ztp.sim._cli:sim_command",
    "device": "ztp.device.cli:device_cmd",
    "build": "ztp.device.cli:build_cmd",
    "flash": "ztp.device.cli:flash_cmd",
    "firmware-check": "ztp.device.cli:firmware_check_cmd",
    "device-demo": "ztp.device.cli:demo_cmd",
    "demo": "ztp.demo._cli:demo_command",
    "modem": "ztp.modem._cli:modem_command",
    "service": "ztp.service._cli:service_group",
    "login": "ztp.service._cli:login_command",
    "logout": "ztp.service._cli:logout_command",
    "sims": "ztp.service._cli:sims_group",
    "configs": "ztp.service._cli:configs_group",
    "clients": "ztp.service._cli:clients_group",
    "audit": "ztp.service._cli:audit_command",
    "rotate": "ztp.service._rotation_cli:rotate_command",
    "rotations": "ztp.service._rotation_cli:rotations_group",
    "gateway": "ztp.gateway._cli:gateway_command",
    "serve": "ztp.gateway._cli:serve_command",
    "bench": "ztp.bench.cli:bench",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module_name, _, attr = COMMANDS[name].partition(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="ztp")
def main() -> None:
    """Zero Touch Provisioning over a SAFE2 SIM: device, SIM, gateway and service tools."""
