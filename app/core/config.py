"""Settings from the environment (FOREWARN_*), read once into a Settings object passed in.

Operators rely on each name and default: a name is never changed without keeping the old
one working as an alias."""

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.core.errors import ConfigError
from app.core.retry import LEASE_SECONDS


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    instance: Path
    database_url: str
    redis_url: str | None  # None: a managed redis-server on a socket in the instance
    web_listen: Listen
    intake_listen: Listen
    base_url: str
    security_address: str
    from_address: str
    announce_address: str | None
    smtp_relay: Listen | None  # None: outgoing mail goes to the instance's Maildir
    secret_key_env: str | None
    embargo_days: int
    fix_target_days: int
    max_message_bytes: int
    cna_org_id: str | None
    cna_short_name: str | None
    vendor: str | None
    product: str | None
    repo_url: str | None
    key_passphrase_file: Path | None
    require_2fa: bool
    # Added since: the intake's protocol and TLS, the plaintext policy, tracking ids.
    intake_protocol: str = "smtp"
    intake_tls_cert: Path | None = None
    intake_tls_key: Path | None = None
    refuse_plaintext: bool = False
    tracking_prefix: str = "SEC"
    publication_hour: int = 14  # UTC hour at which default embargoes end
    # A sending worker's hold on a delivery (app/outbox; the default in app/core/retry.py).
    delivery_lease_seconds: int = LEASE_SECONDS
    # DKIM on outgoing mail: signed when the key file is set (mail/domainkeys.py).
    dkim_key_file: Path | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None  # load_settings: the domain of from_address by default
    # Public pages: show when an embargo ends ("Under embargo until 2027-02-23"), or not.
    show_embargo_dates: bool = True
    # Raw inbound mail and decrypted correspondence are purged this long after a
    # vulnerability's publication or rejection (app/privacy/retention.py).
    retention_days: int = 365
    # Reverse proxies in front of the portal whose X-Forwarded-For the portal believes (so that
    # rate limits and sessions see the visitor's address): 0 trusts none.
    trusted_proxies: int = 0
    # The report form (/report): each file, and all files of one report together.
    report_max_file_bytes: int = 10 * 1024 * 1024
    report_max_bytes: int = 15 * 1024 * 1024
    # Product makers still silent this many days before an embargo ends get one reminder to
    # answer the alert (app/registry/nudges.py); 0: no reminder.
    answer_nudge_days: int = 14
    # CSAF product identification helpers: package URLs without a version (by default the
    # GitHub repository of repo_url) and CPE 2.3 prefixes (cpe:2.3:PART:VENDOR:PRODUCT), each
    # naming the product of `affected` with its name (app/disclosure/exports/csaf.py).
    product_purls: tuple[str, ...] = ()
    product_cpes: tuple[str, ...] = ()
    # The OSV records' own id prefix (app/disclosure/exports/osv.py): FOREWARN_OSV_PREFIX, else
    # the CNA's short name (or the tracking prefix) upper-cased.
    osv_prefix: str | None = None

    @property
    def gnupg_home(self) -> Path:
        return self.instance / "gpg"

    @property
    def public_dir(self) -> Path:
        """The service key's public side, published by whoever holds the secret key for the
        web, which never does (app/servicekey/public.py)."""
        return self.instance / "public"

    @property
    def mail_out(self) -> Path:
        return self.instance / "mail-out"

    @property
    def secret_key_file(self) -> Path:
        return self.instance / "secret_key"

    @property
    def managed_redis_socket(self) -> Path:
        return self.instance / "redis.sock"

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")


def _listen(name: str, value: str) -> Listen:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}={value!r} is not HOST:PORT; set it like 127.0.0.1:8000")
    return Listen(host.strip("[]"), int(port))


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive whole number")
    return number


def _retention_days(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 36500:
        raise ConfigError(
            f"FOREWARN_RETENTION_DAYS={value!r} must be a whole number of days from 1 to 36500 "
            "(default 365)"
        )
    return int(value)


def _trusted_proxies(value: str) -> int:
    if not value.strip().isdigit() or not 0 <= int(value) <= 5:
        raise ConfigError(
            f"FOREWARN_TRUSTED_PROXIES={value!r} must be how many reverse proxies stand in front "
            "of the portal, 0 to 5 (1 for nginx on the same machine; default 0)"
        )
    return int(value)


def _nudge_days(value: str) -> int:
    if not value.strip().isdigit() or not 0 <= int(value) <= 365:
        raise ConfigError(
            f"FOREWARN_ANSWER_NUDGE_DAYS={value!r} must be a whole number of days from 0 to 365 "
            "(0 sends no reminder; default 14)"
        )
    return int(value)


def _hour(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise ConfigError(f"FOREWARN_PUBLICATION_HOUR={value!r} must be an hour from 0 to 23")
    return int(value)


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} must be 1 or 0")


def _database_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme == "sqlite" and value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if scheme in ("postgresql", "postgres") and urlsplit(value).hostname is not None:
        return value
    if scheme in ("postgresql", "postgres") and "host=" in value:
        return value
    raise ConfigError(
        f"FOREWARN_DATABASE_URL={value!r} is not usable; "
        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
    )


# One or more DNS labels: a DKIM selector, or the domain its key is published under.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


_PURL = re.compile(r"pkg:[a-z][a-z0-9.+-]*/(?:[^/@?#\s]+/)*[^/@?#\s]+")
_CPE = re.compile(r"cpe:2\.3:[aho]:[^:\s*?]+:[^:\s*?]+")
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9-]+)/([A-Za-z0-9._-]+?)(?:\.git)?/?")


def _product_purls(value: str | None, repo_url: str | None) -> tuple[str, ...]:
    if value is None:
        github = _GITHUB.fullmatch(repo_url or "")
        # purl's github type: namespace and name are lower case.
        return (f"pkg:github/{github[1].lower()}/{github[2].lower()}",) if github else ()
    purls = tuple(value.split())
    for purl in purls:
        if not _PURL.fullmatch(purl):
            raise ConfigError(
                f"FOREWARN_PRODUCT_PURL: {purl!r} is not a package URL without a version; "
                "write e.g. pkg:github/zephyrproject-rtos/zephyr (several: space-separated)"
            )
    return purls


def _product_cpes(value: str | None) -> tuple[str, ...]:
    cpes = tuple((value or "").split())
    for cpe in cpes:
        if not _CPE.fullmatch(cpe):
            raise ConfigError(
                f"FOREWARN_PRODUCT_CPE: {cpe!r} is not a CPE 2.3 prefix; write "
                "cpe:2.3:PART:VENDOR:PRODUCT, e.g. cpe:2.3:o:zephyrproject:zephyr"
            )
    return cpes


def _dns_name(name: str, value: str) -> str:
    if not DNS_NAME.fullmatch(value) or len(value) > 253:
        raise ConfigError(
            f"{name}={value!r} is not a DNS name; use letters, digits, '-' and '.' (like mail2026)"
        )
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every FOREWARN_* variable; raise ConfigError naming the first bad one."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    instance = Path(get("FOREWARN_INSTANCE") or "./instance").expanduser().resolve()
    base_url = (get("FOREWARN_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigError(f"FOREWARN_BASE_URL={base_url!r} must start with http:// or https://")
    security_address = get("FOREWARN_SECURITY_ADDRESS") or "security@localhost"
    if "@" not in security_address:
        raise ConfigError(
            f"FOREWARN_SECURITY_ADDRESS={security_address!r} must be an address "
            "like security@example.org"
        )
    protocol = (get("FOREWARN_INTAKE_PROTOCOL") or "smtp").lower()
    if protocol not in ("smtp", "lmtp"):
        raise ConfigError(f"FOREWARN_INTAKE_PROTOCOL={protocol!r} must be smtp or lmtp")
    tls_cert, tls_key = get("FOREWARN_INTAKE_TLS_CERT"), get("FOREWARN_INTAKE_TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError(
            "FOREWARN_INTAKE_TLS_CERT and FOREWARN_INTAKE_TLS_KEY must be set together"
        )
    prefix = get("FOREWARN_TRACKING_PREFIX") or "SEC"
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", prefix):
        raise ConfigError(
            f"FOREWARN_TRACKING_PREFIX={prefix!r} must be 1-10 capital letters or digits"
        )
    relay = get("FOREWARN_SMTP_RELAY")
    passphrase_file = get("FOREWARN_KEY_PASSPHRASE_FILE")
    require_2fa = get("FOREWARN_REQUIRE_2FA")
    from_address = get("FOREWARN_FROM_ADDRESS") or security_address
    dkim_key_file, dkim_selector = get("FOREWARN_DKIM_KEY_FILE"), get("FOREWARN_DKIM_SELECTOR")
    dkim_domain = get("FOREWARN_DKIM_DOMAIN")
    if dkim_key_file and not dkim_selector:
        raise ConfigError(
            "FOREWARN_DKIM_KEY_FILE is set but FOREWARN_DKIM_SELECTOR is not; set it to the "
            "selector the key is published under (`forewarn dkim init` prints both)"
        )
    return Settings(
        instance=instance,
        database_url=_database_url(
            get("FOREWARN_DATABASE_URL") or f"sqlite:///{instance / 'forewarn.db'}"
        ),
        redis_url=get("FOREWARN_REDIS_URL"),
        web_listen=_listen("FOREWARN_WEB_LISTEN", get("FOREWARN_WEB_LISTEN") or "127.0.0.1:8000"),
        intake_listen=_listen(
            "FOREWARN_INTAKE_LISTEN", get("FOREWARN_INTAKE_LISTEN") or "127.0.0.1:2525"
        ),
        base_url=base_url,
        security_address=security_address,
        from_address=from_address,
        announce_address=get("FOREWARN_ANNOUNCE_ADDRESS"),
        smtp_relay=_listen("FOREWARN_SMTP_RELAY", relay) if relay else None,
        secret_key_env=get("FOREWARN_SECRET_KEY"),
        embargo_days=_positive_int("FOREWARN_EMBARGO_DAYS", get("FOREWARN_EMBARGO_DAYS") or "90"),
        fix_target_days=_positive_int(
            "FOREWARN_FIX_TARGET_DAYS", get("FOREWARN_FIX_TARGET_DAYS") or "30"
        ),
        max_message_bytes=_positive_int(
            "FOREWARN_MAX_MESSAGE_BYTES", get("FOREWARN_MAX_MESSAGE_BYTES") or "26214400"
        ),
        cna_org_id=get("FOREWARN_CNA_ORG_ID"),
        cna_short_name=get("FOREWARN_CNA_SHORT_NAME"),
        vendor=get("FOREWARN_VENDOR"),
        product=get("FOREWARN_PRODUCT"),
        repo_url=get("FOREWARN_REPO_URL"),
        key_passphrase_file=Path(passphrase_file).expanduser().resolve()
        if passphrase_file
        else None,
        require_2fa=_flag("FOREWARN_REQUIRE_2FA", require_2fa)
        if require_2fa is not None
        else base_url.startswith("https://"),
        intake_protocol=protocol,
        intake_tls_cert=Path(tls_cert).resolve() if tls_cert else None,
        intake_tls_key=Path(tls_key).resolve() if tls_key else None,
        refuse_plaintext=_flag(
            "FOREWARN_REFUSE_PLAINTEXT", get("FOREWARN_REFUSE_PLAINTEXT") or "0"
        ),
        tracking_prefix=prefix,
        publication_hour=_hour(get("FOREWARN_PUBLICATION_HOUR") or "14"),
        delivery_lease_seconds=_positive_int(
            "FOREWARN_DELIVERY_LEASE_SECONDS",
            get("FOREWARN_DELIVERY_LEASE_SECONDS") or str(LEASE_SECONDS),
        ),
        dkim_key_file=Path(dkim_key_file).expanduser().resolve() if dkim_key_file else None,
        dkim_selector=_dns_name("FOREWARN_DKIM_SELECTOR", dkim_selector) if dkim_selector else None,
        dkim_domain=_dns_name("FOREWARN_DKIM_DOMAIN", dkim_domain)
        if dkim_domain
        else from_address.rpartition("@")[2].rstrip(">") or "localhost",
        show_embargo_dates=_flag(
            "FOREWARN_SHOW_EMBARGO_DATES", get("FOREWARN_SHOW_EMBARGO_DATES") or "1"
        ),
        retention_days=_retention_days(get("FOREWARN_RETENTION_DAYS") or "365"),
        trusted_proxies=_trusted_proxies(get("FOREWARN_TRUSTED_PROXIES") or "0"),
        report_max_file_bytes=_positive_int(
            "FOREWARN_REPORT_MAX_FILE_BYTES",
            get("FOREWARN_REPORT_MAX_FILE_BYTES") or str(10 * 1024 * 1024),
        ),
        report_max_bytes=_positive_int(
            "FOREWARN_REPORT_MAX_BYTES", get("FOREWARN_REPORT_MAX_BYTES") or str(15 * 1024 * 1024)
        ),
        answer_nudge_days=_nudge_days(get("FOREWARN_ANSWER_NUDGE_DAYS") or "14"),
        product_purls=_product_purls(get("FOREWARN_PRODUCT_PURL"), get("FOREWARN_REPO_URL")),
        product_cpes=_product_cpes(get("FOREWARN_PRODUCT_CPE")),
        osv_prefix=_osv_prefix(get("FOREWARN_OSV_PREFIX")),
    )


def _osv_prefix(value: str | None) -> str | None:
    """An OSV database prefix of its own: not CVE's (NVD's records), nor the private `x_`."""
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*", value) or len(value) > 30:
        raise ConfigError(
            f"FOREWARN_OSV_PREFIX={value!r} must be letters and digits (a '-' between), like ZEPHYR"
        )
    if value.upper() in ("CVE", "OSV", "GHSA"):
        raise ConfigError(
            f"FOREWARN_OSV_PREFIX={value!r} is another database's; choose your own, like ZEPHYR"
        )
    return value


def dkim_private_key(settings: Settings) -> bytes | None:
    """The DKIM key to sign with, read and checked once per process; None: no DKIM.

    `forewarn up` and `forewarn worker` call it first, so a bad key stops them at start
    with one line instead of failing every delivery.
    """
    if settings.dkim_key_file is None:
        return None
    return _read_dkim_key(settings.dkim_key_file)


@functools.cache
def _read_dkim_key(path: Path) -> bytes:
    from mail import domainkeys  # dkimpy only in the processes that sign

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"FOREWARN_DKIM_KEY_FILE={str(path)!r} cannot be read ({exc.strerror}); "
            "fix the path or its permissions, or run `forewarn dkim init`"
        ) from None
    try:
        domainkeys.check_key(data)
    except domainkeys.UnusableKey as exc:
        raise ConfigError(f"FOREWARN_DKIM_KEY_FILE={str(path)!r}: {exc}") from None
    return data


def child_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment for a child process: ours, with the instance resolved and overrides."""
    env = dict(os.environ)
    env["FOREWARN_INSTANCE"] = str(settings.instance)
    env.update(overrides)
    return env
