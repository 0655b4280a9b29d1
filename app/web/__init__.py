"""The web portal: create_app() builds it; one blueprint per audience."""

import logging
from pathlib import Path

import peewee
from flask import Flask, abort, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from app.core.config import Settings, load_settings
from app.core.instance import secret_key
from app.workers import queue, runtime

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
log = logging.getLogger("forewarn.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_app(settings: Settings | None = None, test_config: dict | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder="static")
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.https,
        SESSION_COOKIE_NAME="forewarn_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.https,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        # A report with its files (app/web/report.py) is the largest request.
        MAX_CONTENT_LENGTH=max(16 * 1024 * 1024, settings.report_max_bytes + 1024 * 1024),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["forewarn.settings"] = settings
    app.extensions["forewarn.db"] = runtime.open_db(settings)
    app.extensions["forewarn.redis"] = queue.connect(runtime.redis_url(settings))
    if settings.trusted_proxies:
        # The visitor's address from the last N X-Forwarded-For entries, which the trusted
        # proxies appended; anything a client put before them is ignored. Only the address:
        # links and cookie security come from FOREWARN_BASE_URL, never from a header.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0, x_port=0, x_prefix=0
        )

    @app.before_request
    def _refuse_nameless_form_fields():
        # Before the CSRF check (registered next), which would crash on a field without a name
        # (a multipart part whose name werkzeug cannot read): found by fuzzing.
        if request.method == "POST" and any(not isinstance(key, str) for key in request.form):
            abort(400)

    CSRFProtect(app)
    # The blueprints are imported and registered here, inside the factory, so that importing
    # app.web runs nothing and its modules can import app.web's helpers without a circle.
    from app.web import (
        account,
        admin,
        advisories,
        alerting,
        answers,
        auth,
        cases,
        csaf,
        downloads,
        followup,
        health,
        osv,
        public,
        registry,
        releases,
        report,
        rotation,
        subscriptions,
        team,
        vetting,
        workspace,
    )

    auth.init_app(app)
    for blueprint in (
        public.bp,
        report.bp,
        downloads.bp,
        osv.bp,
        csaf.bp,
        followup.bp,
        auth.bp,
        team.bp,
        workspace.bp,
        cases.bp,
        admin.bp,
        account.bp,
        advisories.bp,
        alerting.bp,
        answers.bp,
        releases.bp,
        rotation.bp,
        registry.bp,
        subscriptions.bp,
        vetting.bp,
        health.bp,
    ):
        app.register_blueprint(blueprint)
    _install_database_handling(app)
    _install_security_headers(app, settings)
    _install_error_pages(app)
    return app


def _install_database_handling(app: Flask) -> None:
    database = app.extensions["forewarn.db"]

    @app.before_request
    def _connect():
        # The public list is often served from memory: it connects at its first query, if any
        # (peewee's autoconnect).
        if request.endpoint not in ("static", "public.vulnerabilities"):
            database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc):
        if not database.is_closed():
            database.close()


def _install_security_headers(app: Flask, settings: Settings) -> None:
    @app.after_request
    def _headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if settings.https:
            response.headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _install_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        return render_template("error.html", title=title, message=message), status

    @app.errorhandler(CSRFError)
    def _csrf(_error):
        return page(
            400,
            "Form expired",
            "The form was open too long or came from elsewhere. Go back, reload it and try again.",
        )

    @app.errorhandler(403)
    def _forbidden(_error):
        return page(
            403,
            "Not for this account",
            "Your account cannot open this page. If you need it, ask an admin.",
        )

    @app.errorhandler(404)
    def _not_found(_error):
        return page(404, "Not found", "There is nothing at this address.")

    @app.errorhandler(405)
    def _method(_error):
        return page(405, "Not allowed", "This page does not accept that kind of request.")

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def _database_down(error):
        log.error("database unavailable: %s", type(error).__name__)
        # Show the page as to a visitor: loading the signed-in account (flask-login does it for
        # every template) would hit the database again and fail inside this handler.
        app.login_manager._update_request_context_with_user()
        return page(
            503,
            "Temporarily unavailable",
            "The service cannot reach its database right now. Nothing you sent was lost; "
            "please try again in a few minutes.",
        )

    @app.errorhandler(500)
    def _internal(_error):
        return page(
            500,
            "Something went wrong",
            "The error was logged for the operators. Please try again; if it happens again, "
            "tell the security team.",
        )
