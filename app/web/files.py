"""A reporter's file sent back as a download, to the team or to the reporter: always an
attachment (never shown inline), served as bytes unless its type is one a browser cannot run,
never sniffed, never cached, sandboxed should a browser open it anyway."""

from io import BytesIO

from flask import Response, send_file

from app.reports import attachments


def download(found) -> Response:
    """`found`: a kept ReceivedFile (its content present)."""
    response = send_file(
        BytesIO(bytes(found.content)),
        mimetype=attachments.download_type(found),
        as_attachment=True,
        download_name=found.name,
        conditional=False,
        etag=False,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "no-store, private"
    return response
