"""Pages anyone may read."""

from flask import Blueprint, Response, current_app, render_template

from app import runtime

bp = Blueprint("public", __name__)


@bp.route("/")
def index():
    settings = current_app.extensions["forewarn.settings"]
    return render_template("index.html", security_address=settings.security_address)


@bp.route("/key.asc")
def service_key():
    """The service's OpenPGP key, for reporters to encrypt to (linked from every ack)."""
    cache = current_app.extensions.setdefault("forewarn.key_cache", {})
    if "armored" not in cache:
        keyring = runtime.service_keyring(current_app.extensions["forewarn.settings"])
        cache["armored"] = keyring.export_public()
    return Response(
        cache["armored"],
        mimetype="application/pgp-keys",
        headers={"Content-Disposition": 'inline; filename="security-key.asc"'},
    )
