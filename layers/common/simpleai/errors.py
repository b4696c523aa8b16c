"""The gateway's one error tree.

Every failure a caller can see is a `GatewayError` carrying its HTTP status and the OpenAI error
`type`; library exceptions are translated where they occur (`raise ... from exc`) and one handler
renders them all as `{"error": {"message", "type", "param", "code"}}`.

    GatewayError
    ├── InvalidRequestError          400 invalid_request_error
    │   ├── MethodNotAllowedError    405 invalid_request_error
    │   └── RequestTooLargeError     413 invalid_request_error
    ├── AuthenticationError          401 authentication_error
    │   └── MissingTokenError        401 authentication_error (no bearer token sent)
    ├── PermissionDeniedError        403 permission_error
    │   └── InsufficientScopeError   403 permission_error, code insufficient_scope
    ├── NotFoundError                404 not_found_error
    ├── RateLimitError               429 rate_limit_error
    ├── InternalError                500 internal_error
    ├── UpstreamError                502 upstream_error
    ├── ServiceUnavailableError      503 service_unavailable
    │   ├── AuthUnavailableError     503 authentication_unavailable
    │   ├── AuditUnavailableError    503 audit_unavailable
    │   └── UpstreamUnavailableError 503 upstream_unavailable
    └── UpstreamTimeoutError         504 timeout_error
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class GatewayError(Exception):
    """Root of every error the gateway reports to a caller."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, param=self.param, code=self.code)


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    default_code = "method_not_allowed"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    default_code = "request_too_large"


class AuthenticationError(GatewayError):
    """401; `code` is the RFC 6750 error code that goes into WWW-Authenticate."""

    status = 401
    type = "authentication_error"
    default_code: ClassVar[str | None] = "invalid_token"


class MissingTokenError(AuthenticationError):
    """401 to a request without a bearer token (none, or another scheme): RFC 6750 section 3.1
    says its challenge then carries no error code."""

    default_code = None


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "insufficient_scope"


class InsufficientScopeError(PermissionDeniedError):
    """403 to a verified caller whose token lacks scopes; the challenge names them."""

    def __init__(self, message: str, *, required_scopes: tuple[str, ...]) -> None:
        super().__init__(message)
        self.required_scopes = required_scopes


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"


class InternalError(GatewayError):
    status = 500
    type = "internal_error"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "service_unavailable"


class AuthUnavailableError(ServiceUnavailableError):
    type = "authentication_unavailable"


class AuditUnavailableError(ServiceUnavailableError):
    type = "audit_unavailable"


class UpstreamUnavailableError(ServiceUnavailableError):
    type = "upstream_unavailable"


class UpstreamTimeoutError(GatewayError):
    status = 504
    type = "timeout_error"
