"""The audit trail: an append-only, hash-chained event log (see `log` for the hash format)."""

from releasehub.auditlog.log import (
    DownloadRecorder,
    EventData,
    VerifyReport,
    export,
    record,
    record_many,
    summarise_downloads,
    verify,
)

__all__ = ["DownloadRecorder", "EventData", "VerifyReport", "export", "record", "record_many",
           "summarise_downloads", "verify"]
