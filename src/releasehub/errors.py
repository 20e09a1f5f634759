"""Domain errors. Services raise them; one handler at the HTTP edge turns them into responses.

The tree:

    ReleasehubError                      500  (never raised directly)
    ├── BadRequest                       400  BadRequest
    │   ├── InvalidPath                  400  InvalidPath
    │   ├── InvalidName                  400  InvalidName
    │   ├── InvalidCommit                400  BadRequest
    │   ├── ChecksumMismatch             400  ChecksumMismatch
    │   ├── NotGated                     400  NotGated       (nothing to request or grant)
    │   └── LicenseNotAccepted           400  LicenseNotAccepted
    ├── Unauthorized                     401  (no or bad credentials)
    ├── Forbidden                        403  (authenticated, not allowed)
    │   └── Ineligible                   403  Ineligible     (an eligibility rule refused)
    ├── NotFound                         404
    │   ├── RepoNotFound                 404  RepoNotFound   (401 when anonymous)
    │   ├── RevisionNotFound             404  RevisionNotFound
    │   ├── EntryNotFound                404  EntryNotFound
    │   ├── UserNotFound                 404  UserNotFound
    │   └── TokenNotFound                404  TokenNotFound
    ├── Conflict                         409
    │   ├── RepoExists                   409  RepoExists     (carries `url`)
    │   ├── NameTaken                    409  NameTaken
    │   ├── RefExists                    409  RefExists
    │   ├── AlreadyRequested             409  AlreadyRequested
    │   └── LicenseChanged               409  LicenseChanged
    ├── AccessDenied                     401/403/404, the code `decide` chose (see DECISION_CODES)
    ├── PreconditionFailed               412  (parent commit moved)
    ├── PayloadTooLarge                  413  PayloadTooLarge
    └── RangeNotSatisfiable              416

Every error carries `error_code` (sent as `X-Error-Code`, which `huggingface_hub` maps to its
exception classes) and a message that says what happened and what to do next.
"""

from __future__ import annotations


class ReleasehubError(Exception):
    status_code = 500
    error_code = "InternalError"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadRequest(ReleasehubError):
    status_code = 400
    error_code = "BadRequest"


class InvalidPath(BadRequest):
    error_code = "InvalidPath"


class InvalidName(BadRequest):
    error_code = "InvalidName"


class InvalidCommit(BadRequest):
    error_code = "BadRequest"


class ChecksumMismatch(BadRequest):
    error_code = "ChecksumMismatch"


class Unauthorized(ReleasehubError):
    status_code = 401
    error_code = "Unauthorized"


class Forbidden(ReleasehubError):
    status_code = 403
    error_code = "Forbidden"


class NotFound(ReleasehubError):
    status_code = 404
    error_code = "NotFound"


class RepoNotFound(NotFound):
    error_code = "RepoNotFound"


class RevisionNotFound(NotFound):
    error_code = "RevisionNotFound"


class EntryNotFound(NotFound):
    error_code = "EntryNotFound"


class UserNotFound(NotFound):
    error_code = "UserNotFound"


class TokenNotFound(NotFound):
    error_code = "TokenNotFound"


class Conflict(ReleasehubError):
    status_code = 409
    error_code = "Conflict"


class RepoExists(Conflict):
    error_code = "RepoExists"


class NameTaken(Conflict):
    error_code = "NameTaken"


class RefExists(Conflict):
    error_code = "RefExists"


class AccessDenied(ReleasehubError):
    """A denial from `access.decide`, carried to the edge with the status and the Hub error code it chose."""

    def __init__(self, message: str, status_code: int, error_code: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code or "Forbidden"


# The error codes `access.decide` (and `decide_subject`, `decide_namespace`) answer with.
DECISION_CODES = ("RepoNotFound", "EntryNotFound", "GatedRepo", "HostedOnly", "Unauthorized", "Forbidden",
                  "NotFound")


class PreconditionFailed(ReleasehubError):
    status_code = 412
    error_code = "PreconditionFailed"


class PayloadTooLarge(ReleasehubError):
    status_code = 413
    error_code = "PayloadTooLarge"


class RangeNotSatisfiable(ReleasehubError):
    status_code = 416
    error_code = "RangeNotSatisfiable"


class NotGated(BadRequest):
    """An access request or grant on a repo that is neither gated nor tiered."""

    error_code = "NotGated"


class LicenseNotAccepted(BadRequest):
    error_code = "LicenseNotAccepted"


class Ineligible(Forbidden):
    """An eligibility rule refused the request; the message names the rule."""

    error_code = "Ineligible"


class AlreadyRequested(Conflict):
    error_code = "AlreadyRequested"


class LicenseChanged(Conflict):
    """The license text the requester accepted is not the current one."""

    error_code = "LicenseChanged"


# Documented in docs/errors.md; tests/test_docs.py fails when one is missing there.
ALL_ERRORS: tuple[type[ReleasehubError], ...] = (
    BadRequest,
    InvalidPath,
    InvalidName,
    ChecksumMismatch,
    Unauthorized,
    Forbidden,
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
    UserNotFound,
    TokenNotFound,
    RepoExists,
    NameTaken,
    RefExists,
    PreconditionFailed,
    PayloadTooLarge,
    RangeNotSatisfiable,
    NotGated,
    LicenseNotAccepted,
    Ineligible,
    AlreadyRequested,
    LicenseChanged,
)
