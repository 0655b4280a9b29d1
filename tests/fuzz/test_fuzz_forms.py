"""Fuzz every web form: each POST route of the app (app.url_map, as tests/test_routes.py walks
it), signed in as an admin with a valid CSRF token, with random fields (the route's own form
fields and others), random values (huge, unicode, control characters) and random files.

TESTING propagates a view's exception to the test client, so a crash fails the example; the
response must not be a 5xx and nothing may be logged at ERROR.
"""

import inspect
import io
import logging
import pkgutil
from datetime import UTC, datetime
from importlib import import_module

import pytest
from flask_wtf import FlaskForm
from hypothesis import example, given
from hypothesis import strategies as st
from werkzeug.routing.converters import IntegerConverter
from wtforms import FileField, MultipleFileField
from wtforms.fields.core import UnboundField

import app.web
from app.models import User, Vulnerability
from tests.conftest import PASSWORD, csrf_token
from tests.fuzz.conftest import RAN, examples
from tests.test_routes import routes

SKIPPED = {"auth.logout"}  # signs the fuzzing session out; nothing to fuzz (a token alone)


def form_classes() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(app.web.__path__, "app.web."):
        module = import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, FlaskForm) and value is not FlaskForm:
                found.append(value)
    return found


def fields_of(form: type) -> dict[str, bool]:
    """{field name: is a file field} of a form class."""
    fields = {}
    for name in dir(form):
        value = getattr(form, name, None)
        if isinstance(value, UnboundField):
            fields[name] = issubclass(value.field_class, (FileField, MultipleFileField))
    return fields


def route_fields(view, forms: list[type]) -> dict[str, bool]:
    """The fields of the forms a view names in its source, or of every form if it names none."""
    source = inspect.getsource(inspect.unwrap(view))
    named = [form for form in forms if form.__name__ in source]
    fields: dict[str, bool] = {}
    for form in named or forms:
        fields.update(fields_of(form))
    for word in ("List-Unsubscribe", "confirm", "next"):
        fields.setdefault(word, False)
    return fields


VALUES = (
    "SEC-2026-0001",
    "CVE-2026-12345",
    "CVE-2026-1000-1999",
    "2026-12-01",
    "2026-02-30",
    "1",
    "0",
    "-1",
    "99999999999999999999999",
    "y",
    "on",
    "admin",
    "team",
    "registrant",
    "critical",
    "approve",
    "reject",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CWE-79",
    "admin@example.org",
    "maker@example.com",
    "https://example.org/fix",
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n",
    "\x00",
    "\u202e\ufeff",
    "",
)
value = st.one_of(
    st.sampled_from(VALUES),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=100),
    st.text(st.characters(max_codepoint=0x1F), max_size=20),  # control characters
    st.integers(1, 5).map(lambda n: "A" * 10**n),  # up to 100 KB
)


# Any name, those werkzeug cannot read included (a CR, LF or backslash in it: a None key).
field_name = st.text(max_size=20)


@pytest.fixture
def signed_in(app, client, auth, admin_user, clock):
    at = datetime(2026, 11, 25, tzinfo=UTC)
    Vulnerability.create(tracking_id="SEC-2026-0001", reported_at=at, created_at=at, updated_at=at)
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    return admin_user


def sign_in_again(client, admin_user) -> str:
    """Undo what the last example did to the session or the account; the form's CSRF token."""
    User.update(active=True, role="admin").where(User.id == admin_user.id).execute()
    user = User.get_by_id(admin_user.id)
    with client.session_transaction() as session:
        session["_user_id"] = user.session_token
        session["_fresh"] = True
    page = client.get("/team/")
    assert page.status_code == 200, page.status_code
    return csrf_token(page.get_data(as_text=True))


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(record.getMessage())


@examples(80)
@given(data=st.data())
def test_no_form_gives_a_server_error(app, client, signed_in, data):
    forms = form_classes()
    posts = sorted(
        (endpoint, url)
        for _, endpoint, method, url in routes(app)
        if method == "POST" and endpoint not in SKIPPED
    )
    assert posts
    endpoint, url = data.draw(st.sampled_from(posts), label="route")
    RAN["forms: every POST route"] += 1
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    if rule.arguments and data.draw(st.integers(0, 4), label="fuzz url") == 0:
        args = {}
        for name in sorted(rule.arguments):
            if isinstance(rule._converters[name], IntegerConverter):
                args[name] = data.draw(st.integers(0, 2**70), label=name)
            else:
                args[name] = data.draw(st.text(min_size=1, max_size=30), label=name)
        url = rule.build(args)[1]
    known = route_fields(app.view_functions[endpoint], forms)
    names = data.draw(
        st.lists(st.sampled_from(sorted(known)) | field_name, max_size=8), label="fields"
    )
    form: dict = {}
    for name in names:
        if known.get(name):
            upload = data.draw(st.binary(max_size=4096), label=f"{name} file")
            filename = data.draw(st.text(max_size=40), label=f"{name} filename")
            form[name] = (io.BytesIO(upload), filename)
        else:
            form[name] = data.draw(value, label=name)
    token = sign_in_again(client, signed_in)
    if data.draw(st.integers(0, 19), label="keep csrf") or endpoint == "auth.login":
        form["csrf_token"] = token
    handler = _Errors()
    logging.getLogger().addHandler(handler)
    try:
        response = client.post(url, data=form, content_type="multipart/form-data")
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code < 500, (endpoint, url, response.status_code)
    assert not handler.records, (endpoint, handler.records)


@examples(5)
@example(name="\r", token=False)
@given(name=st.sampled_from(("\r", "\n", "a\rb", "\\", "a\\")), token=st.booleans())
def test_an_unnamed_form_part_is_refused_not_a_crash(app, client, name, token):
    """Anonymous, on /login: POST multipart/form-data with one part named "\\r" (werkzeug
    reads no name) crashed flask-wtf's CSRF check (a 500); it is a 400."""
    form = {name: "x"}
    if token:
        form["csrf_token"] = ""
    response = client.post("/login", data=form, content_type="multipart/form-data")
    assert response.status_code == 400
