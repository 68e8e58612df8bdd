"""Every error answer: `{code, message, request_id}` with the error's HTTP status.

No traceback and no exception text from outside mlwarden ever reaches the caller: an
unexpected exception becomes E901 with a fixed message (the request id ties it to the
audit log).
"""

from __future__ import annotations

import math

import orjson

from mlwarden.errors import (
    BudgetError,
    IdentityError,
    InternalError,
    MethodNotAllowedError,
    MlwardenError,
)

Headers = list[tuple[bytes, bytes]]


def as_mlwarden_error(exc: BaseException) -> MlwardenError:
    """`exc` if it is ours, else E901 without its text (which may hold internals)."""
    if isinstance(exc, MlwardenError):
        return exc
    return InternalError("internal error; the request id names it in the audit log")


def error_body(error: MlwardenError, request_id: str) -> bytes:
    return orjson.dumps({"code": error.code, "message": error.message, "request_id": request_id})


def error_headers(error: MlwardenError) -> Headers:
    """Headers beyond the common ones: Retry-After on 429/503 budget refusals,
    WWW-Authenticate on 401, Allow on 405."""
    headers: Headers = []
    if isinstance(error, BudgetError) and error.retry_after is not None:
        seconds = max(1, math.ceil(error.retry_after))
        headers.append((b"retry-after", str(seconds).encode()))
    elif isinstance(error, IdentityError) and error.http_status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="mlwarden"'))
    elif isinstance(error, MethodNotAllowedError) and error.hint:
        headers.append((b"allow", error.hint.encode()))
    return headers
