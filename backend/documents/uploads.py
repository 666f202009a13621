"""What every upload endpoint shares: the file name parameter and the streamed body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter

Filename = Annotated[
    str, Parameter(min_length=1, max_length=255, description="the file's name, e.g. sheet.pdf")
]


async def request_chunks(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The request body as it arrives (never held whole in memory)."""
    async for chunk in request.stream():
        if chunk:
            yield chunk
