"""Every error of the query API as `{"error": {"code", "message", "field"?}, "request_id"}`."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any


class ApiError(Exception):
    """An answer other than success, with the field of the request it is about."""

    def __init__(
        self, status: HTTPStatus, code: str, message: str, *, field: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error, "request_id": request_id}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", message, field=field)


def not_found(field: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "not_found", message, field=field)


def unknown_route(path: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no route {path}")


def internal(request_id: str | None) -> ApiError:
    """A failure of ours: the client gets the request id to report, the log has the rest."""
    return ApiError(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal",
        f"something went wrong on our side; quote request id {request_id} when you report it",
    )


def checked(field: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, its ValueError turned into a 422 naming `field` (the domain's own message)."""
    try:
        return check(value)
    except ValueError as error:
        raise invalid(field, str(error)) from None
