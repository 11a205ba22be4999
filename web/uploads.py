"""The upload → preview → apply steps shared by «Đơn vị» and «Nhiệm vụ»: the posted form read
with a raised body limit (the uploaded file read once, its spool file closed), and the file
carried from the preview page back to «Áp dụng» in a hidden base64 field (the server keeps
nothing between the two steps: behind Caddy another worker may take the second request)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from aiohttp import web

__all__ = ["carried", "carry", "read_upload"]


async def read_upload(
    request: web.Request,
    *,
    max_body: int,
    max_file: int,
    too_large: Callable[[], web.HTTPRequestEntityTooLarge],
) -> dict[str, str | bytes | None]:
    """The form's ``csrf``, ``ten`` and ``tep``: text fields as text; an uploaded ``tep`` as
    bytes (at most ``max_file + 1``, so the caller can tell a file too large) with ``ten`` its
    file name. A body above ``max_body`` raises ``too_large()``."""
    try:
        form = await request.clone(client_max_size=max_body).post()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    fields: dict[str, str | bytes | None] = {}
    for key, value in form.items():
        if isinstance(value, web.FileField):
            try:
                if key == "tep" and "tep" not in fields:
                    fields["tep"] = value.file.read(max_file + 1)
                    fields["ten"] = value.filename
            finally:
                value.file.close()
        elif key not in fields and key in {"csrf", "ten", "tep"}:
            fields[key] = value if isinstance(value, str) else None
    return fields


def carry(data: bytes) -> str:
    """The file as the preview page's hidden field holds it."""
    return base64.b64encode(data).decode("ascii")


def carried(content: object) -> bytes:
    """The file posted back by «Áp dụng»; empty when missing or not base64."""
    if not isinstance(content, str):
        return b""
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return b""
