"""Why an upload could not become a model input, with the HTTP status and error code the API reports."""

from __future__ import annotations


class ImageError(Exception):
    """Base class: ``status`` and ``code`` map straight onto the API's ``{"error": {"code", "message"}}``."""

    status: int = 400
    code: str = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImageError(ImageError):
    """Empty, truncated, corrupt, or not an image at all."""

    status = 400
    code = "invalid_image"


class ImageTooLargeError(ImageError):
    """More pixels than the service accepts (huge dimensions or a decompression bomb); refused before
    any pixel is decoded."""

    status = 413
    code = "image_too_large"


class UnsupportedImageTypeError(ImageError):
    """A recognisable image in a format or pixel mode the service refuses to decode."""

    status = 415
    code = "unsupported_media_type"
