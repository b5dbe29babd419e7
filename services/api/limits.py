"""Request bodies over a small limit are refused with 413, before any route reads them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import ApiError, error_response

MAX_BODY_BYTES = 64 * 1024
# Routes that take up to 1,000 items in one body get more room (1,000 usage events of the
# largest size the contract allows fit in 2 MiB).
LARGER_LIMITS = {"/v1/holds": 1024 * 1024, "/v1/usage": 2 * 1024 * 1024}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


class BodySizeLimit:
    """Checks the declared Content-Length first, then counts the streamed body.

    A chunked body has no Content-Length, so counting while it streams is the only check
    that cannot be bypassed.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = LARGER_LIMITS.get(scope["path"].rstrip("/"), self.limit)
        declared = self._declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, counting_receive, send)

    def _declared_length(self, scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    # A malformed length is the server's problem to reject, not ours.
                    return None
        return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = _too_large(limit)
        response = error_response(413, error.code, str(error.detail), {"Connection": "close"})
        await response(scope, receive, send)
