"""Getting image bytes out of a request: byte limits enforced while reading, before any decoding."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from service.api.errors import ApiError

MULTIPART = "multipart/form-data"
MULTIPART_SLACK = 64 * 1024  # boundary and part headers around a single file


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes
    error: ApiError | None = None  # refused on its own (type or size); the other files still count


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the upload exceeds {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing at once when Content-Length says too much and while streaming otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "invalid Content-Length header") from None
        if size > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(body: bytes):
    """An ASGI ``receive`` that hands back an already-read body, so Starlette can parse it as a form."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _check_part_type(upload: UploadFile) -> None:
    kind = (upload.content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise ApiError(415, "unsupported_media_type", f"part {upload.filename!r} is {kind}, not an image")


async def read_images(
    request: Request, *, field: str, per_file_limit: int, total_limit: int, max_files: int
) -> list[Upload]:
    """Images from a multipart ``field`` or a raw ``image/*`` body; per-file refusals come back in place."""
    kind = media_type(request)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return [Upload(None, kind, await read_body(request, per_file_limit))]
    if kind != MULTIPART:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send multipart/form-data with field {field!r} or a raw image/* body (got {kind or 'nothing'})",
        )
    body = await read_body(request, total_limit)
    form = await Request(request.scope, _replay(body)).form(
        max_files=max_files + 1, max_fields=max_files + 16
    )
    try:
        parts = form.getlist(field)
        files = [p for p in parts if isinstance(p, UploadFile)]
        if not files:
            raise ApiError(
                422, "invalid_parameters", f"multipart field {field!r} with an image file is required"
            )
        if len(files) > max_files:
            raise ApiError(422, "invalid_parameters", f"at most {max_files} files per request")
        uploads: list[Upload] = []
        for part in files:
            try:
                _check_part_type(part)
                data = await part.read()
                if len(data) > per_file_limit:
                    raise too_large(per_file_limit)
                uploads.append(Upload(part.filename, part.content_type, data))
            except ApiError as error:
                uploads.append(Upload(part.filename, part.content_type, b"", error))
        return uploads
    finally:
        await form.close()


async def read_one_image(request: Request, field: str, limit: int) -> bytes:
    """The one image of a single-image route (multipart ``field`` or raw body); its refusal is raised."""
    (upload,) = await read_images(
        request, field=field, per_file_limit=limit, total_limit=limit + MULTIPART_SLACK, max_files=1
    )
    if upload.error is not None:
        raise upload.error
    return upload.data
