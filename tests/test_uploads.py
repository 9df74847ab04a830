"""Bad uploads: each one answers 4xx with a message and leaves no row and no file."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from cms_media.database import session
from cms_media.models import Document
from tests.conftest import image_bytes, upload


@pytest.fixture
def editor(client_for):
    return client_for("editor")


def assert_nothing_stored(app):
    with app.app_context():
        assert session().scalar(select(func.count(Document.id))) == 0
    root = app.extensions["cms_media"].storage.root
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def refused(response, status: int, message: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    assert message in body
    assert "Traceback" not in body


def test_text_file_named_png_is_refused(app, editor):
    response = upload(editor, ("notes.png", b"just some text, not an image\n" * 10))
    refused(
        response,
        400,
        "notes.png: The file is not an image we can read. Upload GIF, JPEG, PNG, WEBP.",
    )
    assert_nothing_stored(app)


def test_svg_is_refused_whatever_its_name(app, editor):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>'
    refused(upload(editor, ("logo.png", svg)), 400, "not an image we can read")
    assert_nothing_stored(app)


def test_other_image_formats_are_refused(app, editor):
    bmp = image_bytes("BMP")
    refused(upload(editor, ("photo.jpg", bmp)), 400, "BMP images are not accepted")
    assert_nothing_stored(app)


def test_zero_byte_file_is_refused(app, editor):
    refused(upload(editor, ("empty.png", b"")), 400, "empty.png: The file is empty.")
    assert_nothing_stored(app)


def test_truncated_image_is_refused(app, editor):
    data = image_bytes("PNG", size=(300, 300), color=(1, 2, 3))
    noisy = Image.effect_noise((300, 300), 80)
    out = io.BytesIO()
    noisy.save(out, "PNG")
    data = out.getvalue()
    refused(upload(editor, ("cut.png", data[: len(data) // 2])), 400, "damaged or incomplete")
    assert_nothing_stored(app)


def test_too_many_pixels_by_our_limit(app, editor):
    app.config["CMS_MEDIA_MAX_IMAGE_PIXELS"] = 10_000
    refused(upload(editor, ("wide.png", image_bytes(size=(200, 100)))), 400, "Scale it down")
    assert_nothing_stored(app)


def test_decompression_bomb_is_a_clean_400(app, editor):
    # Past twice Pillow's own limit it raises DecompressionBombError; our limit is lifted so
    # Pillow's guard is what answers.
    app.config["CMS_MEDIA_MAX_IMAGE_PIXELS"] = 10**12
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 10
    bomb = io.BytesIO()
    Image.new("1", (side, side)).save(bomb, "PNG")
    refused(upload(editor, ("bomb.png", bomb.getvalue())), 400, "too many pixels")
    assert_nothing_stored(app)


def test_request_over_the_size_limit_is_refused_before_reading(app, editor):
    app.config["CMS_MEDIA_MAX_UPLOAD_BYTES"] = 2048
    big = image_bytes("PNG", size=(400, 400))
    big += b"\0" * 4096
    response = upload(editor, ("big.png", big))
    refused(response, 413, "Uploads can be at most")
    assert_nothing_stored(app)


def test_size_limit_is_checked_from_content_length_before_the_body(app, editor):
    """A 50 MB declared body is refused without reading a byte of it."""
    app.config["CMS_MEDIA_MAX_UPLOAD_BYTES"] = 1024

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body was read although Content-Length is over the limit")

        readline = readinto = read

    environ = EnvironBuilder(
        path="/media/upload",
        method="POST",
        headers={
            "HX-Request": "true",
            "X-CSRFToken": editor.token(),
            "Cookie": f"session={editor.get_cookie('session').value}",
        },
    ).get_environ()
    environ.update(
        {
            "wsgi.input": Unreadable(),
            "CONTENT_TYPE": "multipart/form-data; boundary=x",
            "CONTENT_LENGTH": str(50 * 1024 * 1024),
        }
    )
    body, status, _headers = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413")
    assert "Uploads can be at most" in b"".join(body).decode()


def test_one_bad_file_in_a_batch_stores_none(app, editor):
    response = upload(editor, ("good.png", image_bytes()), ("bad.png", b"nope"))
    refused(response, 400, "bad.png:")
    assert_nothing_stored(app)


def test_no_file_chosen(app, editor):
    response = editor.hx_post(
        "/media/upload", data={"folder_id": ""}, content_type="multipart/form-data"
    )
    refused(response, 400, "Choose at least one image to upload.")


def test_storage_failure_leaves_no_row_and_no_file(app, editor, monkeypatch):
    storage = app.extensions["cms_media"].storage
    real_save = storage.save
    calls = []

    def failing_save(key, data, content_type=None):
        calls.append(key)
        if len(calls) == 3:  # the second document's original
            raise OSError("disk full")
        real_save(key, data, content_type)

    monkeypatch.setattr(storage, "save", failing_save)
    with pytest.raises(OSError):
        upload(editor, ("a.png", image_bytes()), ("b.png", image_bytes()))
    assert_nothing_stored(app)


def test_gif_and_webp_are_accepted(app, editor):
    response = upload(editor, ("anim.gif", image_bytes("GIF")), ("pic.webp", image_bytes("WEBP")))
    assert response.status_code == 200
    with app.app_context():
        types = sorted(session().scalars(select(Document.mime_type)))
    assert types == ["image/gif", "image/webp"]


def test_declared_type_and_extension_are_not_trusted(app, editor):
    jpeg = image_bytes("JPEG")
    data = {"folder_id": "", "files": [(io.BytesIO(jpeg), "photo.gif", "image/gif")]}
    editor.hx_post("/media/upload", data=data, content_type="multipart/form-data")
    with app.app_context():
        document = session().scalar(select(Document))
    assert document.mime_type == "image/jpeg"
    assert editor.get(f"/media/documents/{document.id}/file").mimetype == "image/jpeg"


def test_path_in_filename_is_dropped(app, editor):
    upload(editor, ("../../etc/passwd.png", image_bytes()))
    with app.app_context():
        document = session().scalar(select(Document))
    assert document.original_filename == "passwd.png"


def test_script_in_a_filename_renders_as_text(app, editor):
    name = "<img src=x onerror=alert(1)>.png"
    upload(editor, (name, image_bytes()))
    with app.app_context():
        document = session().scalar(select(Document))
    assert document.title == "<img src=x onerror=alert(1)>"
    for url in ("/media/", "/media/?view=list", f"/media/documents/{document.id}"):
        html = editor.get(url).get_data(as_text=True)
        assert "<img src=x onerror" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
