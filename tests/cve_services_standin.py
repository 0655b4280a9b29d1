"""A local stand-in for CVE Services (the CNA's API), as cvelib's CveApi calls it.

The real service (https://cveawg.mitre.org/api/) is out of reach from the tests, so this small
http.server follows what cvelib 1.8 sends: the three CVE-API-* headers on every request, the
query parameters of a reservation, `{"cnaContainer": ...}` bodies, and the answers cvelib reads
(`cve_ids`, `meta.remaining_quota`, `id_quota`/`total_reserved`/`available`, `created`,
`updated`, `error`). State lives in memory, behind one lock.
"""

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CNA_REQUIRED = ("providerMetadata", "descriptions", "affected", "references")
REJECTED_REQUIRED = ("providerMetadata", "rejectedReasons")


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CveServicesStandIn:
    """One CNA (org) with one user, an id quota, and the ids and records it holds."""

    def __init__(
        self,
        org: str = "forewarn-test",
        user: str = "bot@example.org",
        api_key: str = "standin-api-key",
        id_quota: int = 100,
        first_number: int = 20000,
    ):
        self.org, self.user, self.api_key = org, user, api_key
        self.org_uuid = str(uuid.uuid4())
        self.id_quota = id_quota
        self.ids: dict[str, dict] = {}  # cve_id -> the cve-id object
        self.records: dict[str, dict] = {}  # cve_id -> the full CVE record
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._next = {}  # year -> next number
        self._first_number = first_number
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def start(self) -> "CveServicesStandIn":
        standin = self

        class Handler(_Handler):
            service = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the API -------------------------------------------------------------------------------

    def reserved_count(self) -> int:
        return sum(1 for item in self.ids.values() if item["state"] == "RESERVED")

    def quota(self) -> dict:
        reserved = self.reserved_count()
        return {
            "id_quota": self.id_quota,
            "total_reserved": reserved,
            "available": self.id_quota - reserved,
        }

    def handle(self, method: str, path: str, params: dict, body: dict | None) -> tuple[int, dict]:
        with self._lock:
            self.requests.append((method, path))
            return self._route(method, path, params, body)

    def _route(self, method, path, params, body):
        org = re.escape(self.org)
        routes = (
            ("GET", r"/api/health-check", lambda: {"status": "ok"}),
            ("POST", r"/api/cve-id", lambda: self._reserve(params)),
            ("GET", r"/api/cve-id", lambda: {"cve_ids": list(self.ids.values())}),
            ("GET", r"/api/cve-id/(?P<cve>[^/]+)", lambda cve: self._cve_id(cve)),
            ("PUT", r"/api/cve-id/(?P<cve>[^/]+)", lambda cve: self._move(cve, params)),
            ("GET", rf"/api/org/{org}/id_quota", self.quota),
            ("GET", rf"/api/org/{org}", self._org),
            ("GET", r"/api/cve/(?P<cve>[^/]+)", lambda cve: self._record(cve)),
            ("POST", r"/api/cve/(?P<cve>[^/]+)/cna", lambda cve: self._publish(cve, body)),
            ("PUT", r"/api/cve/(?P<cve>[^/]+)/cna", lambda cve: self._update(cve, body)),
            ("POST", r"/api/cve/(?P<cve>[^/]+)/reject", lambda cve: self._reject(cve, body)),
            ("PUT", r"/api/cve/(?P<cve>[^/]+)/reject", lambda cve: self._rejected(cve, body)),
        )
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return 200, action(**match.groupdict())
        raise ApiError(404, "NOT_FOUND", f"{method} {path} is not part of this stand-in")

    def _org(self) -> dict:
        return {"UUID": self.org_uuid, "short_name": self.org, "name": f"{self.org} (stand-in)"}

    def _reserve(self, params: dict) -> dict:
        try:
            amount = int(params.get("amount", ""))
            year = int(params.get("cve_year", ""))
        except ValueError:
            raise ApiError(400, "BAD_INPUT", "amount and cve_year are required") from None
        if params.get("short_name") != self.org:
            raise ApiError(403, "ORG_CANNOT_RESERVE_FOR_OTHER", "short_name is not your org")
        if amount < 1 or (amount > 1 and "batch_type" not in params):
            raise ApiError(400, "BAD_INPUT", "amount > 1 needs batch_type")
        if self.reserved_count() + amount > self.id_quota:
            raise ApiError(403, "EXCEEDED_ID_QUOTA", "The amount exceeds the org's quota")
        reserved = []
        for _ in range(amount):
            number = self._next.get(year, self._first_number)
            self._next[year] = number + 1
            cve_id = f"CVE-{year}-{number:04d}"
            now = _stamp()
            self.ids[cve_id] = {
                "cve_id": cve_id,
                "cve_year": str(year),
                "state": "RESERVED",
                "owning_cna": self.org,
                "requested_by": {"cna": self.org, "user": self.user},
                "reserved": now,
                "time": {"created": now, "modified": now},
            }
            reserved.append(self.ids[cve_id])
        return {"cve_ids": reserved, "meta": {"remaining_quota": self.quota()["available"]}}

    def _owned(self, cve_id: str) -> dict:
        item = self.ids.get(cve_id)
        if item is None:
            raise ApiError(404, "CVE_ID_NOT_FOUND", f"{cve_id} does not exist")
        if item["owning_cna"] != self.org:
            raise ApiError(403, "NOT_OWNER_CNA", f"{cve_id} belongs to another CNA")
        return item

    def _cve_id(self, cve_id: str) -> dict:
        return self._owned(cve_id)

    def _move(self, cve_id: str, params: dict) -> dict:
        item = self._owned(cve_id)
        state = params.get("state")
        if state not in ("REJECTED", "RESERVED"):
            raise ApiError(400, "BAD_INPUT", "state must be REJECTED or RESERVED")
        if item["state"] == "PUBLISHED" or cve_id in self.records:
            raise ApiError(403, "CVE_RECORD_EXISTS", f"{cve_id} has a record; update it instead")
        item["state"] = state
        item["time"]["modified"] = _stamp()
        return {"message": f"{cve_id} was updated.", "updated": item}

    def _record(self, cve_id: str) -> dict:
        if cve_id not in self.records:
            raise ApiError(404, "CVE_RECORD_DNE", f"{cve_id} has no record")
        return self.records[cve_id]

    def _container(self, body: dict | None, required: tuple[str, ...]) -> dict:
        container = (body or {}).get("cnaContainer")
        if not isinstance(container, dict):
            raise ApiError(400, "BAD_INPUT", "the body must be {'cnaContainer': {...}}")
        missing = [name for name in required if name not in container]
        if missing:
            raise ApiError(400, "BAD_INPUT", f"cnaContainer lacks {', '.join(missing)}")
        if container["providerMetadata"].get("orgId") != self.org_uuid:
            raise ApiError(403, "NOT_OWNER_CNA", "providerMetadata.orgId is not your org")
        return container

    def _full_record(self, item: dict, container: dict, state: str) -> dict:
        now = _stamp()
        return {
            "dataType": "CVE_RECORD",
            "dataVersion": "5.1",
            "cveMetadata": {
                "cveId": item["cve_id"],
                "assignerOrgId": self.org_uuid,
                "assignerShortName": self.org,
                "state": state,
                "dateReserved": item["reserved"],
                "datePublished": now,
                "dateUpdated": now,
            },
            "containers": {"cna": container},
        }

    def _publish(self, cve_id: str, body: dict | None) -> dict:
        item = self._owned(cve_id)
        container = self._container(body, CNA_REQUIRED)
        if cve_id in self.records:
            raise ApiError(403, "CVE_RECORD_EXISTS", f"{cve_id} already has a record")
        if item["state"] != "RESERVED":
            raise ApiError(400, "CVE_ID_NOT_RESERVED", f"{cve_id} is {item['state']}")
        item["state"] = "PUBLISHED"
        self.records[cve_id] = self._full_record(item, container, "PUBLISHED")
        return {
            "message": f"{cve_id} record was successfully created.",
            "created": self.records[cve_id],
        }

    def _update(self, cve_id: str, body: dict | None) -> dict:
        item = self._owned(cve_id)
        container = self._container(body, CNA_REQUIRED)
        if item["state"] != "PUBLISHED":
            raise ApiError(403, "CVE_RECORD_DNE", f"{cve_id} has no published record")
        self.records[cve_id]["containers"]["cna"] = container
        self.records[cve_id]["cveMetadata"]["dateUpdated"] = _stamp()
        return {
            "message": f"{cve_id} record was successfully updated.",
            "updated": self.records[cve_id],
        }

    def _reject(self, cve_id: str, body: dict | None) -> dict:
        item = self._owned(cve_id)
        container = self._container(body, REJECTED_REQUIRED)
        if cve_id in self.records:
            raise ApiError(400, "CVE_RECORD_EXISTS", f"{cve_id} already has a record")
        item["state"] = "REJECTED"
        self.records[cve_id] = self._full_record(item, container, "REJECTED")
        return {
            "message": f"{cve_id} record was successfully created.",
            "created": self.records[cve_id],
        }

    def _rejected(self, cve_id: str, body: dict | None) -> dict:
        """PUT /cve/ID/reject: a PUBLISHED record (or a REJECTED one) becomes REJECTED."""
        item = self._owned(cve_id)
        container = self._container(body, REJECTED_REQUIRED)
        if cve_id not in self.records:
            raise ApiError(404, "CVE_RECORD_DNE", f"{cve_id} has no record")
        item["state"] = "REJECTED"
        record = self.records[cve_id]
        record["containers"]["cna"] = container
        record["cveMetadata"].update(state="REJECTED", dateUpdated=_stamp())
        record["cveMetadata"].setdefault("dateRejected", record["cveMetadata"]["dateUpdated"])
        return {"message": f"{cve_id} record was successfully updated.", "updated": record}


class _Handler(BaseHTTPRequestHandler):
    service: CveServicesStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: pytest shows failures, not access logs
        pass

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        params = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        service = self.service
        try:
            if (
                self.headers.get("CVE-API-ORG") != service.org
                or self.headers.get("CVE-API-USER") != service.user
                or self.headers.get("CVE-API-KEY") != service.api_key
            ):
                raise ApiError(401, "UNAUTHORIZED", "Unauthorized")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(400, "BAD_INPUT", "the body is not JSON") from None
            status, payload = service.handle(method, parts.path, params, body)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.error, "message": exc.message}
        self._answer(status, payload)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")
