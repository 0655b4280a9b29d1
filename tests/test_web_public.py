"""Public pages that exist so far: the start page and the service key."""

from tests.openpgp import decrypted, run


def test_the_service_key_is_published_for_reporters(client, keyring, tmp_path):
    response = client.get("/key.asc")
    assert response.status_code == 200
    assert response.mimetype == "application/pgp-keys"
    cert = tmp_path / "key.asc"
    cert.write_bytes(response.data)
    encrypted = run("sqop", "encrypt", str(cert), input=b"a report").stdout
    assert decrypted(keyring, encrypted) == b"a report"


def test_the_start_page_says_where_to_report(client, settings):
    page = client.get("/").get_data(as_text=True)
    assert f"mailto:{settings.security_address}" in page
