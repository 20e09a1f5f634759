"""Server settings, read once from the environment and passed explicitly afterwards.

Every setting has an environment variable `RELEASEHUB_<NAME>`; the CLI's flags set the same
variables so that server worker processes (which import the app by name) see the same values.
Nothing reads the environment at import time: `Settings.from_env()` is called by the app
factory and by CLI commands, once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

ENV_PREFIX = "RELEASEHUB_"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the data lives when neither --data-dir nor RELEASEHUB_DATA_DIR says: the user's data dir.

    Never relative to the working directory: `serve` started in one folder and `db upgrade` or
    `audit verify` run from another must find the same database. `$XDG_DATA_HOME/releasehub`
    (when absolute, as the XDG spec requires), else `~/.local/share/releasehub`.
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "releasehub"

# Documented in docs/settings.md; tests/test_docs.py fails when one is missing there.
SETTINGS_DOC: dict[str, str] = {
    "data_dir": "Directory holding the SQLite database, the blob store and the server secret.",
    "database_url": "SQLAlchemy URL of the metadata database; defaults to SQLite inside the data dir.",
    "public_url": "Base URL clients use to reach the server (used in upload links and repo URLs).",
    "max_regular_file_bytes": "Largest file accepted inline in a commit (non-LFS).",
    "max_file_bytes": "Largest single file accepted through LFS upload.",
    "max_commit_bytes": "Largest NDJSON commit body accepted; spooled to disk and applied line by line.",
    "max_commit_operations": "Largest number of operations in one commit.",
    "multipart_threshold_bytes": "LFS uploads at or above this size are offered as multipart transfers.",
    "multipart_chunk_bytes": "Part size of multipart LFS uploads.",
    "upload_url_ttl_seconds": "Lifetime of the signed upload links handed out by the LFS batch API.",
    "geoip_database": "Path of a MaxMind-format GeoIP country database (.mmdb); when set, country rules "
                      "also check where an access request comes from. Empty: only the declared country.",
    "webhook_poll_seconds": "How often each server process looks for webhook deliveries that are due "
                            "(deliveries are also sent at once after the change that queued them).",
    "redis_url": "Redis for the gateway's rate limits (redis://host:6379/0), so that every replica shares "
                 "one budget per API key. Empty: limits are kept in each process (one replica).",
    "webhook_allowed_networks": "Private networks webhooks may target, as CIDRs (10.0.0.0/8,127.0.0.1/32). "
                                "Empty: public addresses only, so that repo admins cannot make the server call "
                                "services inside its network.",
    "gateway_lease_seconds": "Lease of a gateway call's concurrency slot; a call renews it at half the lease, "
                             "and a replica that dies frees its slots when their leases run out.",
    "audit_key_file": "Ed25519 private key (PEM) that signs audit checkpoints, kept outside the database; "
                      "created with mode 0600 on first use, its public key next to it (.pub). "
                      "Empty: audit-signing.key in the data dir.",
    "audit_checkpoint_seconds": "How often the server sends a signed checkpoint of the audit chain's head to "
                                "the webhooks subscribed to audit.checkpoint (only when the head moved). "
                                "0: never.",
    "xet_token_ttl_seconds": "Lifetime of the CAS tokens the xet-write-token and xet-read-token routes hand out "
                             "(the client asks for a new one before it expires).",
    "xet_max_xorb_bytes": "Largest xorb body accepted on the Xet CAS route (the client packs at most 64 MiB of "
                          "chunk data per xorb; chunk headers add up to 64 KiB).",
    "xet_max_shard_bytes": "Largest shard body accepted on the Xet CAS route, checked before it is parsed.",
    "xet_assembly_sessions": "Xet upload sessions whose blob each server process writes while their xorbs arrive "
                             "(a file sent as whole xorbs in order, such as one large file, then needs no "
                             "reconstruction when its shard comes), at most. 0: files are reconstructed from "
                             "their xorbs when their shard comes.",
    "storage_url": "Where blobs live: file:///DIR (a local directory) or s3://BUCKET[/PREFIX] (an S3-compatible "
                   "object store; credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION). "
                   "Empty: blobs/ in the data dir.",
    "s3_endpoint_url": "Endpoint of an S3-compatible server (http://127.0.0.1:8333 for SeaweedFS, MinIO, Ceph). "
                       "Empty: AWS S3.",
    "s3_public_endpoint_url": "Endpoint that clients reach the object store at, used in presigned download and "
                              "upload links when it differs from s3_endpoint_url. Empty: s3_endpoint_url.",
    "storage_proxy": "1: the server sends blob bytes itself instead of redirecting clients to presigned URLs of "
                     "the object store (for stores that clients cannot reach). 0: redirect (302).",
    "download_url_ttl_seconds": "Lifetime of the presigned object-store URLs that downloads are redirected to.",
    "gc_grace_seconds": "Age below which releasehub gc never removes an unreferenced blob or an upload leftover "
                        "(uploads in progress, and blobs a coming commit will name).",
    "xet_retention_seconds": "Age below which releasehub gc never removes a Xet xorb no file uses (counted from its "
                             "last use: its upload, a shard or a dedup answer naming it) nor a Xet file no commit "
                             "names. The client caches shards for three weeks and then names their xorbs without "
                             "sending them: under 21 days such uploads fail.",
    "gc_interval_seconds": "How often each server process runs the collector. 0: only `releasehub gc`.",
    "accel_redirect_prefix": "Behind nginx: answer downloads of local blobs with X-Accel-Redirect to this internal "
                             "location (e.g. /_blobs/), which nginx maps to the blob directory, so that nginx "
                             "sends the bytes. Empty: the server sends them.",
}


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""
    public_url: str = ""
    max_regular_file_bytes: int = 10 * 1024 * 1024
    max_file_bytes: int = 500 * 1024**3
    max_commit_bytes: int = 1024**3
    max_commit_operations: int = 25_000
    multipart_threshold_bytes: int = 4 * 1024**3
    multipart_chunk_bytes: int = 256 * 1024 * 1024
    upload_url_ttl_seconds: int = 24 * 3600
    geoip_database: str = ""
    webhook_poll_seconds: int = 2
    redis_url: str = ""
    webhook_allowed_networks: str = ""
    gateway_lease_seconds: int = 600
    audit_key_file: str = ""
    audit_checkpoint_seconds: int = 3600
    xet_token_ttl_seconds: int = 3600
    xet_max_xorb_bytes: int = 64 * 1024 * 1024 + 64 * 1024
    xet_max_shard_bytes: int = 64 * 1024 * 1024
    xet_assembly_sessions: int = 4
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_public_endpoint_url: str = ""
    storage_proxy: int = 0
    download_url_ttl_seconds: int = 900
    gc_grace_seconds: int = 24 * 3600
    xet_retention_seconds: int = 21 * 86400
    gc_interval_seconds: int = 6 * 3600
    accel_redirect_prefix: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            if f.name == "data_dir":
                values[f.name] = Path(raw)
            elif f.type in ("int", int):
                values[f.name] = _parse_int(f.name, raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("data_dir", default_data_dir(env))
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env()` in another process return these settings."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'releasehub.db').resolve()}"

    @property
    def audit_key_path(self) -> Path:
        """The audit signing key: `audit_key_file`, or audit-signing.key in the data dir."""
        return Path(self.audit_key_file) if self.audit_key_file else self.data_dir / "audit-signing.key"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def xet_dir(self) -> Path:
        """Verified xorbs (`xorbs/`) and the spool of xorb bodies being checked (`tmp/`)."""
        return self.data_dir / "xet"
