"""Image checks and thumbnails with Pillow.

An upload's type is decided by decoding it, never by its name or declared Content-Type, and
every check runs before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class InvalidImage(ValueError):
    """The bytes are not an image we accept; ``str()`` is a message for the user."""


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int
    checksum: str
    thumbnail: bytes

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.mime_type]


def inspect_image(data: bytes, *, max_pixels: int, thumbnail_size: int) -> ImageInfo:
    """Decode ``data`` completely, check it, and make its WebP thumbnail.

    Raises :class:`InvalidImage` with a message the user can act on.
    """
    if not data:
        raise InvalidImage("The file is empty.")
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit, raises) on decompression bombs; both
            # become a clean rejection here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ALLOWED_FORMATS:
                    raise InvalidImage(f"{image.format} images are not accepted. Upload {allowed}.")
                if image.width * image.height > max_pixels:
                    raise InvalidImage(
                        f"The image is {image.width}×{image.height} pixels; the limit is "
                        f"{max_pixels // 1_000_000} megapixels. Scale it down and try again."
                    )
                image.load()  # decodes every byte: truncated files fail here
                mime_type = ALLOWED_FORMATS[image.format]
                # In place: the decoded image is ours, so neither step copies its pixels.
                ImageOps.exif_transpose(image, in_place=True)
                width, height = image.size
                thumbnail = make_thumbnail(image, thumbnail_size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            "The image has too many pixels to process safely. Scale it down and try again."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage(f"The file is not an image we can read. Upload {allowed}.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(
            "The image file is damaged or incomplete. Export it again and retry."
        ) from None
    return ImageInfo(
        mime_type=mime_type,
        width=width,
        height=height,
        checksum=hashlib.sha256(data).hexdigest(),
        thumbnail=thumbnail,
    )


def make_thumbnail(image: Image.Image, size: int) -> bytes:
    """A WebP no larger than ``size`` on its longer side, alpha kept. Shrinks ``image``
    itself (the caller's decoded copy), so a large image is not copied first."""
    frame = image
    if frame.mode not in ("RGB", "RGBA"):
        frame = frame.convert(
            "RGBA" if "transparency" in frame.info or "A" in frame.mode else "RGB"
        )
    frame.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    frame.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()
