"""Click commands of the configuration service.

``ztp service ...`` works on the data directory (serve, init, create-admin, create-gateway,
migrate, rewrap, add-master-key); ``ztp login``, ``ztp sims``, ``ztp configs``, ``ztp clients``
and ``ztp audit`` talk to a running service over HTTP with the token saved by ``ztp login``
(``$ZTP_URL`` / ``$ZTP_TOKEN`` override it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ztp.listen import bind_listener, parse_hostport

from ._cli_common import (
    DEFAULT_URL,
    json_option,
    operator_client,
    print_json,
    print_table,
    read_credentials_json,
    save_session,
    session_file,
    url_option,
    utc_text,
    wall_clock_ms,
    wide_option,
)
from ._fleet_cli import devices_group, fleets_group, rollouts_group
from ._rotation_cli import rotate_command, rotations_group
from ._users_cli import users_group

__all__ = [
    "audit_command",
    "clients_group",
    "configs_group",
    "devices_group",
    "fleets_group",
    "login_command",
    "logout_command",
    "rollouts_group",
    "rotate_command",
    "rotations_group",
    "service_group",
    "sims_group",
    "users_group",
]

F = TypeVar("F", bound=Callable[..., Any])


def _data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="data directory (default $ZTP_DATA_DIR or ~/.local/share/ztp)",
    )(fn)


def _settings(data_dir: Path | None, *, create_key: bool = False) -> Any:
    from ._keys import MasterKeyError
    from ._settings import Settings

    try:
        return Settings.from_env(data_dir, create_key=create_key)
    except (MasterKeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # an unwritable data directory, ...
        raise click.ClickException(f"data directory: {exc}") from None


def database_error(url: str, exc: Exception) -> str:
    """One line for a database that cannot be reached: the URL without its user and password,
    and the driver's own reason (SQLAlchemy's text would add the statement and a link)."""
    where = url.split("@")[-1] if "@" in url else url
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"database {where}: {reason[0] if reason else type(exc).__name__}"


def settings_options(fn: F) -> F:
    """The service settings a command line may set (each also from the environment;
    docs/service.md, "Settings")."""
    for option in reversed((
        click.option("--smsc-url", envvar="ZTP_SMSC_URL", default=None,
                     help="SMS centre for OTA key rotation [env ZTP_SMSC_URL] (none: `ztp "
                          "rotate` refuses before changing anything; --no-send queues)"),
        click.option("--token-ttl", "token_ttl_s", envvar="ZTP_TOKEN_TTL_S", default=None,
                     type=click.IntRange(60, 30 * 86_400),
                     help="access token lifetime, seconds [env ZTP_TOKEN_TTL_S; default 3600]"),
        click.option("--require-json/--no-require-json", envvar="ZTP_REQUIRE_JSON",
                     default=None,
                     help="refuse configuration bodies that are not JSON [env "
                          "ZTP_REQUIRE_JSON; default off]"),
    )):
        fn = option(fn)
    return fn


def apply_settings_options(st: Any, smsc_url: str | None, token_ttl_s: int | None,
                           require_json: bool | None) -> None:
    if smsc_url:
        if smsc_url.startswith("smpp://"):
            from ._smpp_centre import parse_smpp_url  # the CLI imports the service lazily

            try:
                parse_smpp_url(smsc_url)
            except ValueError as exc:  # the message never holds the password
                raise click.BadParameter(str(exc), param_hint="--smsc-url") from None
        st.sms_centre = smsc_url
    if token_ttl_s is not None:
        st.token_ttl_s = token_ttl_s
    if require_json is not None:
        st.require_json = require_json


# ---------------------------------------------------------------------------- ztp service


@click.group("service")
def service_group() -> None:
    """Run and administer the configuration service (local data directory)."""


@service_group.command("init")
@_data_dir_option
def service_init(data_dir: Path | None) -> None:
    """Create the data directory, a master key file (0600) and the database schema."""
    from ._db import Database, migrate

    st = _settings(data_dir, create_key=True)
    db = Database(st.database_url)
    try:
        migrate(db)
    finally:
        db.dispose()
    click.echo(f"database ready: {st.database_url.split('@')[-1]}")


@service_group.command("serve")
@_data_dir_option
@click.option("--listen", default="127.0.0.1:8080", show_default=True, envvar="ZTP_LISTEN",
              help="HOST:PORT (or PORT) of the HTTP API [env ZTP_LISTEN]")
@click.option("--host", default=None, hidden=True, help="old spelling: host of --listen")
@click.option("--port", default=None, type=int, hidden=True,
              help="old spelling: port of --listen")
@settings_options
@click.option("--init/--no-init", default=True, show_default=True,
              help="create the master key file if there is none (never replaces one)")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              envvar="ZTP_ACCESS_LOG",
              help="one log line per HTTP request (uvicorn's) [env ZTP_ACCESS_LOG]; off by "
                   "default: the audit log records every device request and /metrics counts "
                   "every request, and the line costs a tenth of a device request's CPU")
def service_serve(data_dir: Path | None, listen: str, host: str | None, port: int | None,
                  smsc_url: str | None, token_ttl_s: int | None, require_json: bool | None,
                  init: bool, log_level: str, access_log: bool) -> None:
    """Serve the API with uvicorn (migrates the schema first).

    Also serves /docs (the API reference, from /openapi.json) and /metrics (Prometheus).
    """

    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from ._app import create_app
    from ._keys import MasterKeyError

    l_host, l_port = parse_hostport(listen, option="--listen")
    l_host = host if host is not None else l_host  # --host/--port: the old spelling
    l_port = port if port is not None else l_port
    # bound first: a taken port is one line, before the data directory is touched
    sock = bind_listener(l_host, l_port, "--listen")
    try:
        st = _settings(data_dir, create_key=init)
        apply_settings_options(st, smsc_url, token_ttl_s, require_json)
        try:
            app = create_app(st)
        except MasterKeyError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(database_error(st.database_url, exc)) from None
    except BaseException:
        sock.close()
        raise
    shown = f"[{l_host}]" if ":" in l_host else l_host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    click.echo(f"service: {url} (API reference {url}/docs, metrics {url}/metrics)", err=True)
    # http/loop "auto": httptools' parser and uvloop when installed (the server extra), else
    # h11 and asyncio's loop; the same answers either way
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=access_log,
                                           http="auto", loop="auto"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


# `ztp service run` is the same command under the name the issue also allows.
service_group.add_command(service_serve, "run")


def _create_client(data_dir: Path | None, client_id: str, scopes: tuple[str, ...]) -> None:
    from ._client import create_admin
    from ._errors import ServiceError

    st = _settings(data_dir, create_key=True)
    try:
        secret = create_admin(st, client_id, scopes)
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"client_id: {client_id}", err=True)
    click.echo(f"scopes: {' '.join(scopes)}", err=True)
    click.echo("client_secret (shown once; store it safely):", err=True)
    click.echo(secret)


@service_group.command("create-admin")
@_data_dir_option
@click.option("--client-id", default="admin", show_default=True)
def service_create_admin(data_dir: Path | None, client_id: str) -> None:
    """Create an admin credential directly in the database; prints its secret."""
    _create_client(data_dir, client_id, ("admin",))


@service_group.command("create-gateway")
@_data_dir_option
@click.argument("name")
def service_create_gateway(data_dir: Path | None, name: str) -> None:
    """Create a gateway credential (scope gateway); prints its secret."""
    _create_client(data_dir, name, ("gateway",))


@service_group.command("migrate")
@_data_dir_option
@click.option("--revision", default="head", show_default=True)
def service_migrate(data_dir: Path | None, revision: str) -> None:
    """Apply the schema migrations (Alembic) up to REVISION."""
    from ._db import Database, migrate

    st = _settings(data_dir)
    db = Database(st.database_url)
    try:
        migrate(db, revision)
    finally:
        db.dispose()
    click.echo(f"schema at {revision}")


@service_group.command("add-master-key")
@_data_dir_option
def service_add_master_key(data_dir: Path | None) -> None:
    """Append a new master key version to the key file (then run `rewrap`)."""
    from ._keys import MasterKeyring
    from ._settings import default_data_dir

    if os.environ.get("ZTP_MASTER_KEY"):
        raise click.ClickException("ZTP_MASTER_KEY is set: rotate it there (append a version)")
    ddir = data_dir or default_data_dir()
    path = Path(os.environ.get("ZTP_MASTER_KEY_FILE") or ddir / "master.key")
    ring = MasterKeyring.from_file(path).with_new_version()
    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    ring.write_file(tmp)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)  # the rename itself must survive a crash
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    click.echo(f"master key versions now {list(ring.versions)}; current {ring.current_version}")


@service_group.command("rewrap")
@_data_dir_option
def service_rewrap(data_dir: Path | None) -> None:
    """Re-seal every stored key under the current master key version."""
    from ._db import Database, migrate
    from ._rewrap import rewrap

    st = _settings(data_dir)
    db = Database(st.database_url)
    try:
        migrate(db)
        n = rewrap(db, st.master_key, st.clock_ms())
    finally:
        db.dispose()
    click.echo(f"re-sealed {n} key(s) under master key version {st.master_key.current_version}")


# ---------------------------------------------------------------------------- ztp login


@click.command("login")
@click.option("--url", default=DEFAULT_URL, show_default=True, envvar="ZTP_URL")
@click.option("--client-id", default=None, envvar="ZTP_CLIENT_ID",
              help="client id (default: admin_id of --credentials)")
@click.option("--secret", default=None, envvar="ZTP_CLIENT_SECRET",
              help="client secret (default: --credentials, else prompt, or stdin when not a "
                   "terminal)")
@click.option("--credentials", "credentials_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the credentials.json of `ztp serve`; the session remembers its path (not "
                   "the secret) and logs in again by itself when the token expires")
@click.option("--scope", default=None, help="space-separated subset of the client's scopes")
def login_command(url: str, client_id: str | None, secret: str | None,
                  credentials_file: Path | None, scope: str | None) -> None:
    """Get an access token (client credentials) and save it for the other commands.

    The token lasts the service's token lifetime (1 h by default); `ztp logout` revokes it.
    """
    from ._client import ServiceClient, ServiceClientError

    if credentials_file is not None:
        file_id, file_secret = read_credentials_json(credentials_file)
        client_id = client_id or file_id
        if secret is None and client_id == file_id:
            secret = file_secret
    if not client_id:
        raise click.UsageError("give --client-id (or --credentials FILE)")
    if secret is None:
        if sys.stdin.isatty():
            secret = click.prompt("client secret", hide_input=True)
        else:
            secret = sys.stdin.readline().strip()
    if not secret:  # checked here: an empty secret would only come back as 401 invalid_client
        raise click.UsageError("no client secret: stdin was empty; give --secret, "
                               "--credentials FILE, ZTP_CLIENT_SECRET, or pipe the secret in")
    client = ServiceClient(url)
    try:
        token = client.login(client_id, secret, scope)
    except ServiceClientError as exc:
        raise click.ClickException(f"login failed: {exc}") from None
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.HTTPError):
            raise click.ClickException(f"cannot reach {url}: {exc}") from None
        raise
    finally:
        client.close()
    expires_ms = wall_clock_ms() + 1000 * client.expires_in if client.expires_in else None
    data: dict[str, Any] = {"url": url, "token": token, "client_id": client_id,
                            "expires_ms": expires_ms}
    if scope:
        data["scope"] = scope
    if credentials_file is not None:
        data["credentials_file"] = str(credentials_file.resolve())
    save_session(data)
    lifetime = f" (token valid {client.expires_in} s)" if client.expires_in else ""
    click.echo(f"logged in to {url} as {client_id}{lifetime}")


@click.command("logout")
def logout_command() -> None:
    """Revoke the saved token at the service and forget the session."""
    from ._client import ServiceClient, ServiceClientError

    path = session_file()
    try:  # the file's token, not $ZTP_TOKEN: that one belongs to whoever set it
        session = json.loads(path.read_text())
    except (OSError, ValueError):
        session = {}
    token = session.get("token") if isinstance(session, dict) else None
    revoked = False
    if token:
        client = ServiceClient(session.get("url") or DEFAULT_URL, token)
        try:
            revoked = client.revoke(token)
        except ServiceClientError as exc:
            if exc.status != 401:  # 401: already expired or revoked
                click.echo(f"warning: the service did not revoke the token: {exc}", err=True)
        except Exception as exc:
            import httpx

            if not isinstance(exc, httpx.HTTPError):
                raise
            click.echo(f"warning: cannot reach {client.base_url} to revoke the token "
                       "(it expires by itself)", err=True)
        finally:
            client.close()
    path.unlink(missing_ok=True)
    click.echo("logged out" + (" (token revoked)" if revoked else ""))


# ---------------------------------------------------------------------------- ztp clients


@click.group("clients")
def clients_group() -> None:
    """Manage client credentials (needs scope admin)."""


@clients_group.command("create")
@url_option
@click.argument("client_id")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["read", "write", "admin", "gateway"]))
def clients_create(url: str | None, client_id: str, scopes: tuple[str, ...]) -> None:
    """Create a client; prints its secret once."""
    with operator_client(url) as c:
        click.echo(c.create_client(client_id, list(scopes)))


@clients_group.command("list")
@url_option
@json_option
@wide_option
def clients_list(url: str | None, as_json: bool, wide: bool) -> None:
    with operator_client(url) as c:
        data = c.request("GET", "/v1/clients").json()["clients"]
    if as_json:
        print_json(data)
    else:
        print_table("clients", ["client_id", "scopes", "disabled"],
               [[d["client_id"], " ".join(d["scopes"]), d["disabled"]] for d in data],
               keys=("client_id",), wide=wide)


@clients_group.command("disable")
@url_option
@click.argument("client_id")
def clients_disable(url: str | None, client_id: str) -> None:
    """Disable a client and revoke its tokens."""
    with operator_client(url) as c:
        c.disable_client(client_id)
    click.echo(f"disabled {client_id}")


# ---------------------------------------------------------------------------- ztp sims


@click.group("sims")
def sims_group() -> None:
    """SIM registry: import the vendor key file, add, list, suspend, remove."""


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep:
            raise click.BadParameter(f"label {v!r} must be key=value")
        out[k] = val
    return out


@sims_group.command("add")
@url_option
@click.argument("iccid")
@click.option("--psk", default=None, help="PSK as hex (16 bytes)")
@click.option("--generate-psk", is_flag=True, help="generate a PSK (printed once)")
@click.option("--tag", default=None)
@click.option("--label", "labels", multiple=True, help="key=value (repeatable)")
@click.option("--force", is_flag=True, help="accept a wrong Luhn check digit")
@click.option("--bind-first-device", is_flag=True)
@json_option
def sims_add(url: str | None, iccid: str, psk: str | None, generate_psk: bool,
             tag: str | None, labels: tuple[str, ...], force: bool, bind_first_device: bool,
             as_json: bool) -> None:
    """Register a SIM."""
    try:
        psk_bytes = bytes.fromhex(psk) if psk else None
    except ValueError:
        raise click.BadParameter("--psk must be hex") from None
    with operator_client(url) as c:
        out = c.create_sim(iccid, psk=psk_bytes, generate_psk=generate_psk, tag=tag,
                           labels=_labels(labels), force=force,
                           bind_first_device=bind_first_device)
    if as_json:
        print_json(out)
    else:
        click.echo(f"registered {out['iccid']} (identity {out['identity']})")
        if "psk" in out:
            click.echo(f"generated PSK (shown once): {out['psk']}")


@sims_group.command("import")
@url_option
@click.argument("key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="accept ICCIDs with a wrong Luhn check digit")
@click.option("--chunk", "chunk_rows", default=20_000, show_default=True,
              help="rows per request; each request is one transaction (all or nothing)")
@click.option("--start-row", default=1, show_default=True,
              help="first data row to import (resume after a failed chunk)")
def sims_import(url: str | None, key_file: Path, force: bool, chunk_rows: int,
                start_row: int) -> None:
    """Import the SIM vendor's key file (CSV with iccid,psk[,tag,kic,kid] or JSON).

    Every row is checked first (a bad file imports nothing); a file of more than --chunk
    rows is then sent in chunks, each one transaction (docs/service.md, "Bulk import").
    """
    from ._bulk import ImportError_, import_key_file

    def progress(done: int, totals: dict[str, int]) -> None:
        if totals["requests"] > 1 or done >= chunk_rows:
            click.echo(f"  {done:,} rows imported", err=True)

    with operator_client(url) as c:
        try:
            out = import_key_file(c, key_file, force=force, chunk_rows=chunk_rows,
                                  start_row=start_row, progress=progress)
        except ImportError_ as exc:
            raise click.ClickException(str(exc)) from None
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    click.echo(f"SIMs created: {out['sims_created']}, PSKs added: {out['psks_added']}"
               + (f", unchanged (already there): {out['unchanged']}" if out["unchanged"] else ""))


@sims_group.command("list")
@url_option
@click.option("--state", type=click.Choice(["active", "suspended"]), default=None)
@click.option("--label", default=None, help="key=value")
@click.option("--limit", default=100, show_default=True)
@json_option
@wide_option
def sims_list(url: str | None, state: str | None, label: str | None, limit: int,
              as_json: bool, wide: bool) -> None:
    """List SIMs (ICCIDs never cut; --wide for one line per SIM, --json for everything)."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if label:
        params["label"] = label
    with operator_client(url) as c:
        sims = c.list_sims(**params)
    if as_json:
        print_json(sims)
        return
    print_table("SIMs", ["iccid", "identity", "state", "keys", "labels", "bound device"],
           [[s["iccid"], s["identity"], s["state"],
             " ".join(f"{k['kind']}:{k['tag']}" + ("" if k["state"] == "active" else "(r)")
                      for k in s["keys"]),
             " ".join(f"{k}={v}" for k, v in s["labels"].items()), s["bound_device_id"]]
            for s in sims], keys=("iccid",), below=("labels",), wide=wide)


@sims_group.command("show")
@url_option
@click.argument("iccid")
def sims_show(url: str | None, iccid: str) -> None:
    with operator_client(url) as c:
        print_json(c.get_sim(iccid))


def _set_state(url: str | None, iccid: str, state: str) -> None:
    with operator_client(url) as c:
        out = c.update_sim(iccid, state=state)
    click.echo(f"{out['iccid']}: {out['state']}")


@sims_group.command("suspend")
@url_option
@click.argument("iccid")
def sims_suspend(url: str | None, iccid: str) -> None:
    """Suspend a SIM: the gateway gets no PSK for it, devices no configuration."""
    _set_state(url, iccid, "suspended")


@sims_group.command("activate")
@url_option
@click.argument("iccid")
def sims_activate(url: str | None, iccid: str) -> None:
    _set_state(url, iccid, "active")


@sims_group.command("remove")
@url_option
@click.argument("iccid")
@click.option("--yes", is_flag=True, help="do not ask")
def sims_remove(url: str | None, iccid: str, yes: bool) -> None:
    """Remove a SIM with its keys and configurations (the audit log keeps its history)."""
    if not yes:
        click.confirm(f"remove SIM {iccid} with its keys and configurations?", abort=True)
    with operator_client(url) as c:
        c.delete_sim(iccid)
    click.echo(f"removed {iccid}")


@sims_group.command("add-key")
@url_option
@click.argument("iccid")
@click.option("--kind", type=click.Choice(["psk", "kic", "kid"]), default="psk")
@click.option("--tag", default=None)
@click.option("--key", "key_hex", default=None, help="hex; omit to generate")
def sims_add_key(url: str | None, iccid: str, kind: str, tag: str | None,
                 key_hex: str | None) -> None:
    """Add a key (rotation: the old one stays usable until retired)."""
    try:
        key = bytes.fromhex(key_hex) if key_hex else None
    except ValueError:
        raise click.BadParameter("--key must be hex") from None
    with operator_client(url) as c:
        out = c.add_key(iccid, kind, key=key, tag=tag)
    click.echo(f"{iccid}: added {kind} tag {out['tag']}")
    if "key" in out:
        click.echo(f"generated key (shown once): {out['key']}")


@sims_group.command("retire-key")
@url_option
@click.argument("iccid")
@click.argument("tag")
@click.option("--kind", type=click.Choice(["psk", "kic", "kid"]), default="psk")
def sims_retire_key(url: str | None, iccid: str, tag: str, kind: str) -> None:
    with operator_client(url) as c:
        c.set_key_state(iccid, kind, tag, "retired")
    click.echo(f"{iccid}: retired {kind} tag {tag}")


# ---------------------------------------------------------------------------- ztp configs


@click.group("configs")
def configs_group() -> None:
    """Configurations per ICCID + DeviceID (or 'default'): set, get, history, rollback."""


@configs_group.command("set")
@url_option
@click.argument("iccid")
@click.argument("device_id")
@click.argument("body", required=False)
@click.option("--file", "body_file", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path))
@click.option("--require-json/--no-require-json", default=None)
@click.option("--if-version", type=int, default=None, help="refuse unless this is current")
@click.option("--comment", default=None)
def configs_set(url: str | None, iccid: str, device_id: str, body: str | None,
                body_file: Path | None, require_json: bool | None, if_version: int | None,
                comment: str | None) -> None:
    """Set the configuration BODY (or --file) for DEVICE_ID (hex) or 'default'."""
    if (body is None) == (body_file is None):
        raise click.UsageError("give BODY or --file, not both or neither")
    text = body if body is not None else body_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    if body_file is not None:
        text = text.rstrip("\n")
    with operator_client(url) as c:
        out = c.set_config(iccid, device_id, text, require_json=require_json,
                           if_version=if_version, comment=comment)
    click.echo(f"{iccid} {out['device_id']}: version {out['version']}")


@configs_group.command("get")
@url_option
@click.argument("iccid")
@click.argument("device_id", default="default")
@json_option
def configs_get(url: str | None, iccid: str, device_id: str, as_json: bool) -> None:
    with operator_client(url) as c:
        out = c.get_config(iccid, device_id)
    if as_json:
        print_json(out)
    else:
        click.echo(out["body"])


@configs_group.command("delete")
@url_option
@click.argument("iccid")
@click.argument("device_id")
def configs_delete(url: str | None, iccid: str, device_id: str) -> None:
    with operator_client(url) as c:
        out = c.delete_config(iccid, device_id)
    click.echo(f"{iccid} {device_id}: deleted (version {out['version']})")


@configs_group.command("history")
@url_option
@click.argument("iccid")
@click.argument("device_id", default="default")
@click.option("--limit", default=50, show_default=True)
@json_option
@wide_option
def configs_history(url: str | None, iccid: str, device_id: str, limit: int,
                    as_json: bool, wide: bool) -> None:
    with operator_client(url) as c:
        versions = c.history(iccid, device_id, limit)
    if as_json:
        print_json(versions)
        return
    print_table(f"{iccid} {device_id}", ["version", "by", "time (UTC)", "comment", "body"],
           [[v["version"], v["created_by"], utc_text(v["created_ms"]), v["comment"],
             "(deleted)" if v["deleted"] else v["body"]] for v in versions],
           keys=("version", "time (UTC)"), below=("body", "comment"), wide=wide)


@configs_group.command("rollback")
@url_option
@click.argument("iccid")
@click.argument("device_id")
@click.argument("version", type=int)
def configs_rollback(url: str | None, iccid: str, device_id: str, version: int) -> None:
    """Make VERSION current again (recorded as a new version)."""
    with operator_client(url) as c:
        out = c.rollback(iccid, device_id, version)
    click.echo(f"{iccid} {device_id}: version {out['version']} (= version {version})")


@configs_group.command("export")
@url_option
@click.argument("out_file", type=click.Path(dir_okay=False, path_type=Path), required=False)
def configs_export(url: str | None, out_file: Path | None) -> None:
    """Every current configuration as JSON (to OUT_FILE or stdout)."""
    with operator_client(url) as c:
        rows = c.export_configs()
    text = json.dumps({"configs": rows}, indent=2, sort_keys=True) + "\n"
    if out_file is None:
        click.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        click.echo(f"exported {len(rows)} configuration(s) to {out_file}", err=True)


@configs_group.command("import")
@url_option
@click.argument("in_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def configs_import(url: str | None, in_file: Path) -> None:
    """Import configurations (the export format), all or nothing."""
    try:
        data = json.loads(in_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.ClickException(f"{in_file}: not JSON: {exc}") from None
    rows = data.get("configs") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise click.ClickException(f"{in_file}: expected {{\"configs\": [...]}} or a list")
    # Export rows carry their version; an import makes new versions.
    rows = [{k: v for k, v in r.items() if k != "version"} if isinstance(r, dict) else r
            for r in rows]
    with operator_client(url) as c:
        out = c.import_configs(rows)
    click.echo(f"imported {out['imported']} configuration(s)")


# ---------------------------------------------------------------------------- ztp audit


@click.command("audit")
@url_option
@click.option("--iccid", default=None)
@click.option("--action", default=None, help="e.g. config.deliver, sim.moved")
@click.option("--alerts", is_flag=True, help="alerts only")
@click.option("--after", default=0, show_default=True, help="event id to continue after")
@click.option("--limit", default=100, show_default=True)
@json_option
@wide_option
def audit_command(url: str | None, iccid: str | None, action: str | None, alerts: bool,
                  after: int, limit: int, as_json: bool, wide: bool) -> None:
    """The audit log: every change and delivery (who, when, version, gateway, detail).

    ICCIDs and actions are never cut; the other columns fold at the terminal's width
    (--wide: one line per event; --json: everything)."""
    params: dict[str, Any] = {"after": after, "limit": limit}
    if iccid:
        params["iccid"] = iccid
    if action:
        params["action"] = action
    if alerts:
        params["severity"] = "alert"
    with operator_client(url) as c:
        events = c.audit(**params)
    if as_json:
        print_json(events)
        return

    def detail(d: Any) -> str:
        if not d:
            return ""
        if isinstance(d, dict):
            return " ".join(
                f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                for k, v in sorted(d.items()))
        return json.dumps(d, separators=(",", ":"))

    print_table("audit", ["id", "time (UTC)", "actor", "gateway", "action", "iccid", "device",
                     "version", "!", "detail"],
           [[e["id"], utc_text(e["at_ms"]), e["actor"], e["gateway"], e["action"], e["iccid"],
             e["device_id"], e["version"], "ALERT" if e["severity"] == "alert" else "",
             detail(e.get("detail"))]
            for e in events], keys=("id", "time (UTC)", "action", "iccid"), below=("detail",),
           wide=wide)
