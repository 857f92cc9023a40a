"""Service settings: database URL, master key, token lifetime, limits, injected clock."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._files import private_dir, private_file
from ._keys import MasterKeyError, MasterKeyring
from ._smpp_centre import parse_smpp_url
from ._throttle import LoginLimits

__all__ = ["ConsoleSettings", "Settings", "default_data_dir"]

CONFIG_BODY_MAX = 254  # seed: "The Body shall be less than 255 characters" (bytes of UTF-8)
TELEMETRY_BODY_MAX = 1024  # docs/INTERFACES.md: POST /v1/data body <= 1024 bytes, else 413


def default_data_dir() -> Path:
    """``$ZTP_DATA_DIR`` or ``~/.local/share/ztp``."""
    env = os.environ.get("ZTP_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ztp"


TOKEN_TTL_MIN_S = 60
TOKEN_TTL_MAX_S = 30 * 86_400


def _env_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValueError(f"{name} must be an integer {lo}..{hi}, got {raw!r}")
    return int(raw)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    """``ZTP_CONSOLE_TRUSTED_PROXIES``: addresses or networks, comma separated.

    Raises:
        ValueError: an entry is not an IP address or network (named in the message).
    """
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"ZTP_CONSOLE_TRUSTED_PROXIES: {item!r} is not an IP address "
                             "or network") from None
    return tuple(out)


@dataclass(frozen=True)
class ConsoleSettings:
    """The operator console at ``/console`` (issue 18, docs/console.md).

    Args:
        idle_s: a session ends after this long without a request.
        max_s: a session ends this long after its login, whatever happens.
        trusted_proxies: reverse proxies (addresses or networks) whose ``X-Forwarded-Proto``
            and ``X-Forwarded-For`` are believed: the session cookie is ``Secure`` when the
            browser's request came over HTTPS, and logins are throttled per real address.
        address_limits: failed logins per client address (``_throttle.LoginLimits``).
        account_limits: failed logins per username.
    """

    idle_s: int = 30 * 60
    max_s: int = 12 * 3600
    trusted_proxies: tuple[str, ...] = ()
    address_limits: LoginLimits = field(default_factory=LoginLimits)
    account_limits: LoginLimits = field(
        default_factory=lambda: LoginLimits(burst=5, per_minute=1.0))

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        """``ZTP_CONSOLE_IDLE_S``, ``ZTP_CONSOLE_MAX_S``, ``ZTP_CONSOLE_TRUSTED_PROXIES``.

        Raises:
            ValueError: a malformed value (named in the message).
        """
        return cls(idle_s=_env_int("ZTP_CONSOLE_IDLE_S", 30 * 60, 60, 7 * 86_400),
                   max_s=_env_int("ZTP_CONSOLE_MAX_S", 12 * 3600, 60, 30 * 86_400),
                   trusted_proxies=parse_trusted_proxies(
                       os.environ.get("ZTP_CONSOLE_TRUSTED_PROXIES", "")))


@dataclass
class Settings:
    """Everything ``create_app`` needs.

    Args:
        database_url: SQLAlchemy URL; ``sqlite:///path`` (WAL) or ``postgresql+psycopg://...``.
        master_key: keyring sealing per-SIM keys (see ``ztp.service._keys``).
        token_ttl_s: lifetime of access tokens.
        require_json: refuse configuration bodies that are not JSON (service-wide default;
            each configuration may also require it).
        telemetry_keep_per_sim: telemetry records kept per SIM (oldest dropped first).
        fast_hashing: small Argon2 parameters, for tests only.
        clock_ms: wall clock in epoch milliseconds (tests inject one; the service never sleeps).
        auto_migrate: run the Alembic migrations when the app starts.
        token_cache_s: how long a resolved access token is believed without asking the
            database (``_auth.TokenCache``): a revocation made through another process
            sharing the database takes effect within this bound; one made through this
            process takes effect at once. 0 disables the cache.
        login_limits: throttling of ``POST /v1/auth/token`` (failed logins per client
            address, concurrent Argon2 verifications; ``_throttle.py``).
        sms_centre: where OTA rotation packets go (``POST /v1/rotations/run``): the URL of an
            SMS centre (``http://``: ``ztp.modem.SmsCentre``; ``smpp://``: an operator's SMSC
            over SMPP v3.4, ``_smpp_centre.py``), an object with ``deliver(iccid, tpdu) ->
            PoR | None`` (tests), or None (rotations can be started but not sent).
        console: the operator console's sessions, proxies and login limits.
    """

    database_url: str
    master_key: MasterKeyring
    token_ttl_s: int = 3600
    require_json: bool = False
    telemetry_keep_per_sim: int = 100
    audit_page_max: int = 1000
    fast_hashing: bool = False
    auto_migrate: bool = True
    token_cache_s: float = 1.0
    clock_ms: Callable[[], int] = field(default=_wall_clock_ms, repr=False)
    sms_centre: object = None
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @classmethod
    def from_env(
        cls, data_dir: str | os.PathLike[str] | None = None, *, create_key: bool = False
    ) -> Settings:
        """Settings from the environment, defaulting to files in ``data_dir``.

        ``ZTP_DATABASE_URL`` (default ``sqlite:///<data_dir>/ztp.db``); master key from
        ``ZTP_MASTER_KEY``, else the file ``ZTP_MASTER_KEY_FILE``, else
        ``<data_dir>/master.key`` (generated with mode 0600 when ``create_key`` and absent).
        The data directory is created 0700; an existing key file or SQLite directory that
        other users can read is tightened, with a warning (``_files.py``).

        ``ZTP_SMSC_URL``, ``ZTP_TOKEN_TTL_S`` and ``ZTP_REQUIRE_JSON`` set ``sms_centre``,
        ``token_ttl_s`` and ``require_json`` (docs/service.md, "Settings").

        Raises:
            MasterKeyError: no master key could be found (fail closed), or it is malformed.
            ValueError: a setting in the environment is malformed (named in the message).
        """
        ddir = Path(data_dir) if data_dir is not None else default_data_dir()
        url = os.environ.get("ZTP_DATABASE_URL") or f"sqlite:///{ddir / 'ztp.db'}"
        if os.environ.get("ZTP_MASTER_KEY"):
            keyring = MasterKeyring.parse(os.environ["ZTP_MASTER_KEY"])
        else:
            key_file = Path(os.environ.get("ZTP_MASTER_KEY_FILE") or ddir / "master.key")
            if not key_file.exists():
                if not create_key:
                    raise MasterKeyError(
                        f"no master key: set ZTP_MASTER_KEY or create {key_file} "
                        "(`ztp service init` generates one)"
                    )
                private_dir(key_file.parent)
                MasterKeyring.generate().write_file(key_file)
            else:
                private_file(key_file)  # tightened (with a warning) if others can read it
            keyring = MasterKeyring.from_file(key_file)
        if url.startswith("sqlite:///"):
            # the database's directory is private; Database makes its files 0600
            private_dir(Path(url.removeprefix("sqlite:///")).parent)
        smsc_url = os.environ.get("ZTP_SMSC_URL") or None
        if smsc_url and smsc_url.startswith("smpp://"):
            parse_smpp_url(smsc_url)  # SmppUrlError (ValueError): the fault, never the password
        return cls(database_url=url, master_key=keyring, sms_centre=smsc_url,
                   token_ttl_s=_env_int("ZTP_TOKEN_TTL_S", 3600, TOKEN_TTL_MIN_S,
                                        TOKEN_TTL_MAX_S),
                   require_json=_env_bool("ZTP_REQUIRE_JSON", False),
                   console=ConsoleSettings.from_env())
