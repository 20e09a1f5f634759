"""The audit trail: an append-only, hash-chained event log (see `log` for the hash format)."""

from releasehub.auditlog.log import (
    BatchRecorder,
    DownloadRecorder,
    EventData,
    VerifyReport,
    export,
    record,
    record_many,
    summarise_downloads,
    verify,
)

__all__ = ["BatchRecorder", "DownloadRecorder", "EventData", "VerifyReport", "export", "record", "record_many",
           "summarise_downloads", "verify"]
