"""The CSAF 2.0 trusted provider (CSAF 2.0, section 7.1): provider-metadata.json and a directory
distribution of every published vulnerability's advisory, each with its hashes and a detached
signature by the service key.

Signing needs the secret key, which the web never holds: whoever holds it (the workers, and the
operator's `forewarn csaf publish`) writes the whole tree into instance/public/csaf, and the web
serves those files as they are (app.disclosure.provider_files, app/web/csaf.py). The tree is
built in a fresh folder (a generation under instance/public/.csaf/) and made current by
replacing the symbolic link instance/public/csaf in one rename: a reader sees the old tree or
the new, never half of one.

    csaf/provider-metadata.json            7.1.7, 7.1.9 (/.well-known/csaf/), 7.1.20
    csaf/openpgp/<FINGERPRINT>.asc         the service key's certificate (7.1.20)
    csaf/white/index.txt, changes.csv      7.1.12, 7.1.13 (the distribution's directory_url)
    csaf/white/csaf-feed-tlp-white.json    7.1.15: the ROLIE feed of the same documents
    csaf/white/<year>/<name>.json          7.1.11 (the year of initial_release_date), 5.1 names
              ... .json.sha256, .sha512    7.1.18
              ... .json.asc                7.1.19

Only published vulnerabilities, read through app.disclosure.redaction's public view (by
app.disclosure.exports.document), ever reach the tree. tick() is the reconciler's call: it
builds again when a vulnerability was published or changed, the key rotated or the settings
that the documents show changed; an unchanged document keeps its signature.
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import peewee

from app.core import timefmt
from app.core.config import Settings
from app.core.errors import OperatorError
from app.disclosure import provider_metadata as described
from app.disclosure import redaction
from app.models import CveId, Vulnerability
from app.servicekey import public

log = logging.getLogger("forewarn.csaf")

ROOT = "csaf"  # the symbolic link in the public folder: /.well-known/csaf/
GENERATIONS = ".csaf"  # the trees it points to
STATE = ".forewarn-state.json"  # in each tree: what it was built from (never served)
RETRY_AFTER_SECONDS = 600  # after a failed build, the reconciler tries again this much later

# Settings no advisory can show (and that must not reach even a digest in a public folder).
_NOT_SHOWN = ("database", "redis", "secret", "passphrase", "dkim", "tls", "listen", "relay")

_last_failure: dict[Path, float] = {}
_building = threading.Lock()


class NotBuilt(OperatorError):
    """The provider directory cannot be built (no service key yet)."""


@dataclass(frozen=True)
class Summary:
    directory: Path
    documents: int
    signed: int  # signed in this build; the others kept their signature
    skipped: tuple[str, ...]  # tracking ids whose advisory did not validate


def _published_rows():
    return (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId, peewee.JOIN.LEFT_OUTER)
        .where(Vulnerability.status == "published")
        .order_by(Vulnerability.id)
    )


def digest(at: datetime, settings: Settings, fingerprint: str, certificate: str) -> str:
    """What the tree is built from, cheaply: each published vulnerability's id, CVE id and last
    change (every change sets updated_at), the key, the settings the documents show and this
    release of Forewarn. A tree built from another digest is stale."""
    rows = [
        [v.tracking_id, v.cve.cve_id if v.cve_id else None, str(v.published_at), str(v.updated_at)]
        for v in _published_rows()
        if v.published_at is not None and v.published_at <= at
    ]
    shown = {
        name: str(value)
        for name, value in sorted(dataclasses.asdict(settings).items())
        if not any(word in name for word in _NOT_SHOWN)
    }
    source = [rows, shown, fingerprint, _sha(certificate.encode("ascii")), _release()]
    return hashlib.sha256(json.dumps(source, default=str).encode("utf-8")).hexdigest()


def _release() -> str:
    try:
        return metadata.version("forewarn")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha(data: bytes, name: str = "sha256") -> str:
    return hashlib.new(name, data).hexdigest()


def current(settings: Settings) -> Path | None:
    """The tree now served, or None before the first build."""
    link = settings.public_dir / ROOT
    return link.resolve() if link.is_dir() else None


def state(settings: Settings) -> dict | None:
    """What the current tree was built from (its digest, key, documents), or None."""
    tree = current(settings)
    try:
        return json.loads((tree / STATE).read_text(encoding="utf-8")) if tree else None
    except (OSError, ValueError):
        return None


def publish(keyring, settings: Settings, at: datetime) -> Summary:
    """Build the provider directory of every vulnerability published by `at`, signed by the
    service key, and make it the one served."""
    fingerprint = keyring.fingerprint()
    if fingerprint is None:
        raise NotBuilt("there is no service key yet: run `forewarn init`")
    folder = settings.public_dir
    generations = folder / GENERATIONS
    generations.mkdir(mode=0o755, parents=True, exist_ok=True)
    with _building, open(generations / ".lock", "a") as lock:
        # One build at a time, in this process (the reconciler's thread, a lift's job) and
        # in every other worker sharing the folder.
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(keyring, settings, at, fingerprint, generations)


def _build(keyring, settings: Settings, at: datetime, fingerprint: str, generations: Path):
    # Imported here: the export validators take about a second to import, which every command
    # that imports the reconciler would otherwise pay.
    from app.disclosure import exports
    from app.disclosure.exports import csaf, fields

    certificate = _certificate(keyring, settings, fingerprint)
    source = digest(at, settings, fingerprint, _published_certificate(settings, fingerprint))
    before = state(settings) or {}
    old_tree = current(settings)
    kept = before.get("documents", {}) if before.get("fingerprint") == fingerprint else {}
    folder = settings.public_dir
    tree = Path(tempfile.mkdtemp(prefix=f"{timefmt.compact(at)}-", dir=generations))
    os.chmod(tree, 0o755)  # noqa: S103 (public files, read by a web running as another user)
    white = tree / described.TLP
    documents: dict[str, dict] = {}
    skipped, signed = [], 0
    try:
        for v in _published_rows():
            view = redaction.public_view(v, at)
            if not isinstance(view, redaction.Published):
                continue  # not public (yet) at `at`
            try:
                document = exports.document("csaf", v, at, settings)
                exports.validate("csaf", document)
            except exports.InvalidDocument as exc:
                # The team sees it in the publication's steps; never a document that is not valid.
                log.warning("CSAF provider: %s left out: %s", v.tracking_id, exc)
                skipped.append(v.tracking_id)
                continue
            tracking = document["document"]["tracking"]
            # white/<year of initial_release_date>/<name>.json; index.txt and changes.csv name
            # it from the distribution's folder (white/).
            path = fields.csaf_path(view).removeprefix(f"{described.TLP}/")
            data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
            entry = {
                "tracking_id": tracking["id"],
                "title": document["document"]["title"],
                "initial_release_date": tracking["initial_release_date"],
                "current_release_date": tracking["current_release_date"],
                "sha512": _sha(data, "sha512"),
            }
            name = path.rsplit("/", 1)[1]
            _put(white / path, data)
            for hash_name in described.HASHES:
                _put(white / f"{path}.{hash_name}", f"{_sha(data, hash_name)}  {name}\n")
            old = kept.get(path)
            old_signature = old_tree / described.TLP / f"{path}.asc" if old_tree else None
            if old and old["sha512"] == entry["sha512"] and old_signature.is_file():
                _put(white / f"{path}.asc", old_signature.read_bytes())
            else:
                _put(white / f"{path}.asc", keyring.sign_detached(data).armored)
                signed += 1
            documents[path] = entry
        _put(white / described.INDEX, "".join(f"{path}\n" for path in sorted(documents)))
        _put(white / described.CHANGES, described.changes(documents))
        _put(tree / "openpgp" / f"{fingerprint}.asc", certificate)
        provider = described.metadata(settings, fingerprint, csaf.publisher(settings), before, at)
        described.validate(provider)
        _put(tree / described.METADATA, json.dumps(provider, indent=2) + "\n")
        feed = described.feed(settings, documents, provider["last_updated"])
        _put(white / described.FEED, json.dumps(feed, indent=2, ensure_ascii=False) + "\n")
        built = {
            "digest": source,
            "fingerprint": fingerprint,
            "built_at": at.isoformat(),
            "metadata": provider,
            "documents": documents,
        }
        _put(tree / STATE, json.dumps(built, indent=2) + "\n")
        _switch(folder, tree)
    except BaseException:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    _prune(generations, keep={tree, old_tree})
    log.info("CSAF provider: %d documents published (%d signed now)", len(documents), signed)
    return Summary(folder / ROOT, len(documents), signed, tuple(skipped))


def _published_certificate(settings: Settings, fingerprint: str) -> str:
    """The key's certificate as published for the web (app.servicekey.public), or "" while
    another key's is (its publication follows in the same reconciler pass)."""
    published = public.read(settings)
    if published is not None and published.fingerprint == fingerprint:
        return published.certificate
    return ""


def _certificate(keyring, settings: Settings, fingerprint: str) -> str:
    return _published_certificate(settings, fingerprint) or keyring.export_public()


def _put(path: Path, data: str | bytes) -> None:
    """A file of a tree not served yet: readable by a web running as another user."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(path, 0o644)


def _switch(folder: Path, tree: Path) -> None:
    """Make `tree` the one served: one rename of the link, atomic for every reader."""
    link = folder / ROOT
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a folder left by hand: the link takes its place
    temporary = folder / f".{ROOT}-{tree.name}"
    temporary.unlink(missing_ok=True)
    os.symlink(f"{GENERATIONS}/{tree.name}", temporary)
    os.replace(temporary, link)


def _prune(generations: Path, keep: set) -> None:
    """The trees before the previous one: the previous stays for readers still in it."""
    kept = {k.resolve() for k in keep if k is not None}
    for tree in generations.iterdir():
        if tree.is_dir() and tree.resolve() not in kept:
            shutil.rmtree(tree, ignore_errors=True)


def stale(at: datetime, settings: Settings, fingerprint: str | None) -> bool:
    """Whether the tree served was built from other vulnerabilities, another key or other
    settings than those of `at` (False while there is no key to sign with)."""
    if fingerprint is None:
        return False
    built = state(settings)
    certificate = _published_certificate(settings, fingerprint)
    return built is None or built.get("digest") != digest(at, settings, fingerprint, certificate)


def tick(at: datetime, settings: Settings, open_keyring) -> bool:
    """The reconciler's call, every pass (and the lift's, at once): build the directory again
    when it is stale (a publication, a public change, a key rotation or renewal, other
    settings). Returns whether it built."""
    folder = settings.public_dir
    failed = _last_failure.get(folder)
    if failed is not None and time.monotonic() - failed < RETRY_AFTER_SECONDS:
        return False
    keyring = open_keyring()
    if not stale(at, settings, keyring.fingerprint()):
        return False
    try:
        publish(keyring, settings, at)
    except Exception:
        _last_failure[folder] = time.monotonic()
        raise
    _last_failure.pop(folder, None)
    return True
