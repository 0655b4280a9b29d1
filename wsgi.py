"""For gunicorn or any WSGI server: `gunicorn wsgi:app`."""

from app.web import create_app

app = create_app()
