"""CVE Services (the CNA's API) through cvelib: where it is, who we are there, and its HTTP
failures turned into one line that says what to fix."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

import requests
from cvelib.cve_api import CveApi

from app.core.errors import OperatorError

URL_VAR, USER_VAR, KEY_VAR, ORG_VAR = (
    "FOREWARN_CVE_SERVICES_URL",
    "FOREWARN_CVE_API_USER",
    "FOREWARN_CVE_API_KEY",
    "FOREWARN_CNA_SHORT_NAME",
)


@dataclass(frozen=True)
class ServicesConfig:
    """Where CVE Services is and who we are there; None from from_environ means block mode."""

    url: str  # the API base, ending in /api/
    org: str  # the CNA's short name
    user: str
    api_key: str = field(repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "ServicesConfig | None":
        env = os.environ if environ is None else environ
        url, user, key, org = (
            (env.get(name) or "").strip() for name in (URL_VAR, USER_VAR, KEY_VAR, ORG_VAR)
        )
        if not (url or user or key):
            return None
        missing = [
            name
            for name, value in ((URL_VAR, url), (USER_VAR, user), (KEY_VAR, key), (ORG_VAR, org))
            if not value
        ]
        if missing:
            raise OperatorError(
                f"CVE Services needs {', '.join(missing)} as well; set "
                f"{'it' if len(missing) == 1 else 'them'}, or unset {URL_VAR}, {USER_VAR} and "
                f"{KEY_VAR} to use the CNA's blocks"
            )
        url = CveApi.ENVS.get(url, url)
        parts = urlsplit(url)
        if not (parts.scheme == "https" and parts.hostname) and not (
            parts.scheme == "http" and loopback(parts.hostname)
        ):
            raise OperatorError(
                f"{URL_VAR}={url!r} must be an https:// URL such as "
                "https://cveawg.mitre.org/api/ (or prod, test or dev)"
            )
        return cls(url=url if url.endswith("/") else url + "/", org=org, user=user, api_key=key)

    def api(self) -> CveApi:
        return CveApi(username=self.user, org=self.org, api_key=self.api_key, url=self.url)


def loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host or "").is_loopback
    except ValueError:
        return False


@contextmanager
def session(config: ServicesConfig, doing: str) -> Iterator[CveApi]:
    """cvelib's API, with its HTTP failures turned into one line that says what to fix."""
    try:
        yield config.api()
    except requests.HTTPError as exc:
        response = exc.response
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {"error": response.reason}
        error, message = str(body.get("error", "")), str(body.get("message", ""))
        if response.status_code == 401:
            raise OperatorError(
                f"CVE Services refused our credentials ({response.status_code} {error}) "
                f"when trying to {doing}; check {USER_VAR}, {KEY_VAR} and {ORG_VAR}"
            ) from None
        detail = " ".join(f"{error}: {message}".split()).strip(": ")
        raise OperatorError(
            f"CVE Services answered {response.status_code} {detail} when trying to {doing}"
        ) from None
    except requests.RequestException as exc:
        raise OperatorError(
            f"cannot {doing} at CVE Services {config.url} ({type(exc).__name__}); "
            f"check {URL_VAR} and the network"
        ) from None


def quota(config: ServicesConfig | None) -> dict | None:
    """The org's quota at CVE Services (id_quota, total_reserved, available); None for blocks."""
    if config is None:
        return None
    with session(config, "read the id quota") as api:
        answer = api.quota()
    return {key: int(answer[key]) for key in ("id_quota", "total_reserved", "available")}


def error_of(exc: requests.HTTPError) -> str:
    try:
        return exc.response.json().get("error", "")
    except ValueError:
        return ""
