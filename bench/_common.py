"""Shared helpers of the benchmarks in bench/ (not part of the test suite).

Everything here runs against loopback only. Servers are started in their own session
(process group) so that granian's worker processes can be stopped with one os.killpg().
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
from collections import Counter
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
RELEASEHUB = str(VENV_BIN / "releasehub") if (VENV_BIN / "releasehub").exists() else "releasehub"
MIB = 1024 * 1024

console = Console()


# --------------------------------------------------------------------------- small utilities

def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def bench_tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"rhbench-{prefix}-", dir="/tmp"))


def make_random_file(path: Path, size_mib: int) -> Path:
    """Write size_mib MiB of random bytes (incompressible, not dedupable) to path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 8 * MIB
    remaining = size_mib * MIB
    with open(path, "wb") as handle:
        while remaining > 0:
            n = min(chunk, remaining)
            handle.write(os.urandom(n))
            remaining -= n
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def warm_page_cache(path: Path) -> None:
    """Read the whole file once so later reads come from the page cache."""
    with open(path, "rb", buffering=0) as handle:
        buf = bytearray(8 * MIB)
        while handle.readinto(buf):
            pass


def process_cpu_s(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds (0 for ones already gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def nginx_server(prefix: Path, http: str, log: Path, *, worker_connections: int = 1024) -> subprocess.Popen:
    """nginx in the foreground as its own process group: one worker, its pid file, error log and
    temp files under `prefix`; `http` is the body of the `http {}` block (the bench's servers)."""
    nginx = ensure_tool("nginx", "nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(("user root;\n" if os.geteuid() == 0 else "")
                    + f"worker_processes 1;\ndaemon off;\nmaster_process on;\npid {prefix}/nginx.pid;\n"
                    f"error_log {prefix}/error.log warn;\nevents {{ worker_connections {worker_connections}; }}\n"
                    f"http {{\n    access_log off;\n{temp}\n{http}}}\n")
    return start_group([nginx, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)], log)


def ensure_tool(binary: str, apt_package: str) -> str:
    """Path of `binary`; installs the Debian package once if it is missing."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    console.print(f"[yellow]{binary} missing: apt-get install {apt_package}[/yellow]")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", apt_package], check=True, env=env, timeout=900)
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        raise RuntimeError(f"{binary} still not found after installing {apt_package}")
    return found


def wait_http_ok(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll url until it answers 2xx (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s (last error: {last})")


# --------------------------------------------------------------------------- process groups

def start_group(cmd: Sequence[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start cmd in a new session (own process group), stdout+stderr to log."""
    handle = open(log, "ab")
    try:
        return subprocess.Popen(list(cmd), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    finally:
        handle.close()


def stop_group(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `grace` seconds."""
    if proc is None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Workers may outlive the parent for a moment: make sure the whole group is gone.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def group_pids(proc: subprocess.Popen) -> list[int]:
    """Pids of all processes in proc's process group (parent first)."""
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(proc.pid)], capture_output=True, text=True, timeout=10)
    return [int(p) for p in out.stdout.split()]


# --------------------------------------------------------------------------- releasehub

@dataclass
class Releasehub:
    """A running `releasehub serve` with a user `alice` and a write token."""

    data_dir: Path
    port: int
    token: str
    proc: subprocess.Popen | None = None
    log: Path | None = None
    user: str = "alice"
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, folder: Path, repo: str, private: bool = False, timeout: float = 1800) -> float:
        """`releasehub push folder alice/repo`; returns the wall time of the whole command."""
        env = dict(os.environ, HF_ENDPOINT=self.url, HF_TOKEN=self.token)
        cmd = [RELEASEHUB, "push", str(folder), f"{self.user}/{repo}"] + (["--private"] if private else [])
        start = time.perf_counter()
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"push failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return elapsed

    def blob_path(self, sha256: str) -> Path:
        return self.data_dir / "blobs" / sha256[:2] / sha256[2:4] / sha256


def _cli(args: Sequence[str], timeout: float = 120) -> str:
    result = subprocess.run([RELEASEHUB, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"releasehub {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def create_user_and_token(data_dir: Path, user: str = "alice") -> str:
    """A fresh database with `user` as its first admin (the one account command that writes the database
    directly); returns the write token it prints last."""
    _cli(["db", "upgrade", "--data-dir", str(data_dir)])
    out = _cli(["users", "create", user, "--admin", "--local", "--data-dir", str(data_dir)])
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1]


@contextlib.contextmanager
def releasehub_server(data_dir: Path, workers: int = 1) -> Iterator[Releasehub]:
    """Create alice + a write token in data_dir, serve it on a free port, stop it afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = create_user_and_token(data_dir)
    port = free_port()
    log = data_dir / "serve.log"
    proc = start_group([RELEASEHUB, "serve", "--data-dir", str(data_dir), "--port", str(port),
                        "--workers", str(workers)], log)
    hub = Releasehub(data_dir=data_dir, port=port, token=token, proc=proc, log=log)
    try:
        wait_http_ok(f"{hub.url}/api/health", timeout=60, proc=proc)
        yield hub
    finally:
        stop_group(proc)


# --------------------------------------------------------------------------- HTTP clients

def curl_download(url: str, headers: Sequence[str] = (), timeout: float = 600) -> tuple[float, int, int]:
    """(bytes/s, bytes, status) of one curl GET written to /dev/null."""
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download} %{http_code}",
           "--max-time", str(int(timeout))]
    for header in headers:
        cmd += ["-H", header]
    cmd.append(url)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    speed, size, code = result.stdout.split()
    return float(speed), int(size), int(code)


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")
_WRK_ERRORS = re.compile(r"Socket errors:.*")
_WRK_LAT = re.compile(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)")


@dataclass
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: str
    latency_avg: str
    raw: str


def run_wrk(url: str, duration_s: int, connections: int, threads: int, script: Path | None = None,
            headers: Sequence[str] = ()) -> WrkResult:
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--timeout", "5s"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    out = result.stdout + result.stderr
    match = _WRK_RPS.search(out)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{out}")
    non2xx = _WRK_NON2XX.search(out)
    total = _WRK_TOTAL.search(out)
    errors = _WRK_ERRORS.search(out)
    lat = _WRK_LAT.search(out)
    return WrkResult(rps=float(match.group(1)), requests=int(total.group(1)) if total else 0,
                     non_2xx=int(non2xx.group(1)) if non2xx else 0,
                     socket_errors=errors.group(0) if errors else "", latency_avg=lat.group(1) if lat else "?",
                     raw=out)


_AB_RPS = re.compile(r"Requests per second:\s+([\d.]+)")
_AB_COMPLETE = re.compile(r"Complete requests:\s+(\d+)")
_AB_FAILED = re.compile(r"Failed requests:\s+(\d+)")
_AB_NON2XX = re.compile(r"Non-2xx responses:\s+(\d+)")
_AB_KEEPALIVE = re.compile(r"Keep-Alive requests:\s+(\d+)")
_AB_MEAN = re.compile(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)")


@dataclass
class AbResult:
    rps: float
    requests: int
    failed: int
    non_2xx: int
    keepalive: int
    latency_avg: str
    raw: str
    cpu_share: float = 0.0  # CPU seconds of ab per second of the run


def run_ab(url: str, duration_s: int, connections: int, headers: Sequence[str] = (), head: bool = True) -> AbResult:
    """ApacheBench with keep-alive for a fixed duration; `-i` sends HEAD (wrk 4.1 cannot: see head_rps.py)."""
    cmd = ["ab", "-q", "-k", "-c", str(connections), "-t", str(duration_s), "-n", "100000000", "-s", "10"]
    if head:
        cmd.append("-i")
    for header in headers:
        cmd += ["-H", header]
    cmd.append(url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = result.stdout + result.stderr
    match = _AB_RPS.search(out)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"ab failed ({result.returncode}):\n{out}")

    def num(rx: re.Pattern) -> int:
        m = rx.search(out)
        return int(m.group(1)) if m else 0

    mean = _AB_MEAN.search(out)
    return AbResult(rps=float(match.group(1)), requests=num(_AB_COMPLETE), failed=num(_AB_FAILED),
                    non_2xx=num(_AB_NON2XX), keepalive=num(_AB_KEEPALIVE),
                    latency_avg=f"{mean.group(1)}ms" if mean else "?", raw=out, cpu_share=cpu / wall)


# --------------------------------------------------------------------------- machine load

def _cpu_times() -> tuple[int, int]:
    fields_ = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields_]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]), idle


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over `interval` seconds (0..1)."""
    total0, idle0 = _cpu_times()
    time.sleep(interval)
    total1, idle1 = _cpu_times()
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total


def wait_for_quiet(threshold: float = 0.15, max_wait_s: float = 180.0, settle: int = 3) -> float:
    """Wait (bounded) until the machine is quiet: `settle` consecutive 1 s samples under threshold.

    The benchmark machine may be shared (other test runs); this only lowers the odds of measuring
    while something else runs. Returns the last busy fraction seen (recorded in the results).
    """
    deadline = time.monotonic() + max_wait_s
    quiet = 0
    busy = cpu_busy()
    while time.monotonic() < deadline:
        busy = cpu_busy()
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= settle:
            return busy
    console.print(f"[yellow]machine still busy ({busy:.0%} CPU) after {max_wait_s:.0f}s; measuring anyway[/yellow]")
    return busy


def _busy_ticks() -> int:
    """user + nice + system ticks of all CPUs (irq/softirq/steal left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[0] + values[1] + values[2]


def _pids_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields_[11]) + int(fields_[12])
    return total


def _own_ticks() -> float:
    tck = os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += (usage.ru_utime + usage.ru_stime) * tck
    return own


class ForeignLoad:
    """CPU used on the machine by anything but this benchmark, over one measured run, in cores.

    busy(user+nice+system from /proc/stat) - this process and its waited-for children (the
    clients: curl, ab, wrk, push, cp) - the server processes given by pid. The machine may be
    shared (other engineers' test runs), and a run that shared the CPUs is not a fair sample.
    """

    def __init__(self, server_pids: Sequence[int] = ()) -> None:
        self.server_pids = list(server_pids)

    def __enter__(self) -> "ForeignLoad":
        self._t0 = time.monotonic()
        self._busy0 = _busy_ticks()
        self._own0 = _own_ticks() + _pids_ticks(self.server_pids)
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        busy = _busy_ticks() - self._busy0
        own = _own_ticks() + _pids_ticks(self.server_pids) - self._own0
        self.cores = max(0.0, (busy - own) / os.sysconf("SC_CLK_TCK") / elapsed)


@dataclass
class Sample:
    value: object
    foreign: float
    tries: int


def measured(fn: Callable[[], object], server_pids: Sequence[int] = (), max_foreign: float = 0.2,
             tries: int = 3) -> Sample:
    """Run fn() and retry (after waiting for a quiet machine) while other work used more than
    `max_foreign` cores during it; at most `tries` attempts, the least disturbed one is kept."""
    best: Sample | None = None
    for attempt in range(1, tries + 1):
        with ForeignLoad(server_pids) as load:
            value = fn()
        sample = Sample(value, load.cores, attempt)
        if best is None or sample.foreign < best.foreign:
            best = Sample(value, load.cores, attempt)
        if load.cores <= max_foreign:
            break
        console.print(f"[yellow]other work used {load.cores:.2f} cores during that run; waiting and retrying[/yellow]")
        wait_for_quiet(max_wait_s=120)
    assert best is not None
    best.tries = attempt
    return best


class WarmMemory:
    """Hand recently touched memory to the kernel while a timed run writes into the page cache.

    On this kind of VM (virtio-balloon free page reporting) memory that has been free for a
    couple of seconds goes back to the host, and the next page-cache write into it pays a fault
    on the host: about 3 s per GiB here, several times the cost of the copy itself. Which run
    pays it depends on timing (cp right after a large delete is fast; a push seconds later is
    not), so both the push and cp runs get the same treatment: `mib` MiB are touched before the
    run (untimed), then released in `chunks` pieces, one every `interval` seconds from the start
    of the timed run, so that page-cache writes find freshly freed, host-backed pages.
    """

    def __init__(self, mib: int, chunks: int = 8, interval: float = 0.4) -> None:
        self.mib, self.chunks, self.interval = mib, chunks, interval
        self._arrays: list = []
        self._stop = None
        self._thread = None

    def __enter__(self) -> "WarmMemory":
        import threading

        import numpy as np

        if self.mib <= 0:
            return self
        size = max(1, self.mib // self.chunks) * MIB
        self._arrays = [np.ones(size, dtype=np.uint8) for _ in range(self.chunks)]  # touches every page
        self._stop = threading.Event()

        def release() -> None:
            while self._arrays and not self._stop.is_set():
                self._arrays.pop()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=release, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
        self._arrays.clear()


# --------------------------------------------------------------------------- profiling (py-spy)

PYSPY_DIR = Path("/tmp/rhbench-tools/py-spy")


def ensure_py_spy() -> str:
    found = shutil.which("py-spy")
    if found:
        return found
    binary = PYSPY_DIR / "bin" / "py-spy"
    if not binary.exists():
        console.print("[yellow]installing py-spy from PyPI into /tmp/rhbench-tools (not into .venv)[/yellow]")
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--target", str(PYSPY_DIR), "py-spy"],
                       check=True, timeout=600)
    return str(binary)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


_LIBDIR = re.compile(r"^.*?/(?:lib/python3\.\d+/(?:site-packages/)?|src/)")
# Frames that sit under every sample (process start-up, thread bootstrap): left out of the
# inclusive ranking, which would otherwise list only them.
_SCAFFOLD = ("typer/", "click/", "multiprocessing/", "granian/server/", "threading.py", "releasehub/cli/",
             "runpy.py", "anyio/_backends/_asyncio.py", "<frozen")


def _frame_key(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = _LIBDIR.sub("", match.group("file"))
    return f"{match.group('func')} ({path})"


def summarize_profile(raw: Path, top: int = 15, bucket: Callable[[list[str]], str] | None = None) -> dict:
    """Aggregate py-spy's collapsed stacks: inclusive %, self %, and a coarse breakdown."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack_text.split(";")[1:]]  # first item: thread / process
        if not frames:
            continue
        total += count
        for key in set(frames):
            if not any(marker in key for marker in _SCAFFOLD):
                inclusive[key] += count
        self_time[frames[-1]] += count
        if bucket is not None:
            buckets[bucket(frames)] += count
    pct = (lambda c: 100.0 * c / total) if total else (lambda c: 0.0)
    own = [(k, round(pct(v), 1)) for k, v in inclusive.most_common()
           if k.split("(")[-1].startswith("releasehub/") and "releasehub/app.py" not in k][:top]
    return {
        "releasehub_inclusive": own,
        "samples": total,
        "inclusive": [(k, round(pct(v), 1)) for k, v in inclusive.most_common(top)],
        "self": [(k, round(pct(v), 1)) for k, v in self_time.most_common(top)],
        "buckets": [(k, round(pct(v), 1)) for k, v in buckets.most_common()],
    }


# --------------------------------------------------------------------------- reporting

def code_fingerprint() -> str:
    """A short hash of the server's source tree (src/releasehub/**/*.py), to tell which code was
    measured and whether it changed during a run (others may edit the tree meanwhile)."""
    digest = hashlib.sha256()
    src = ROOT / "src" / "releasehub"
    for path in sorted(src.rglob("*.py")):
        with contextlib.suppress(OSError):
            digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    fs = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        fs = subprocess.run(["df", "-hT", "/tmp"], capture_output=True, text=True, timeout=10).stdout.splitlines()[-1]
    versions = {}
    for mod in ("granian", "fastapi", "starlette", "huggingface_hub"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    tools = {}
    for tool, args in (("nginx", ["-v"]), ("curl", ["--version"]), ("wrk", ["-v"]), ("ab", ["-V"])):
        with contextlib.suppress(Exception):
            path = shutil.which(tool) or f"/usr/sbin/{tool}"
            res = subprocess.run([path, *args], capture_output=True, text=True, timeout=10)
            first = (res.stdout + res.stderr).strip().splitlines()[0]
            if tool == "curl":
                first = " ".join(first.split()[:2])
            elif tool == "ab":
                first = first.replace("This is ", "").replace(" <$Revision$>", "")
            tools[tool] = first.split(" Copyright")[0]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tmp_fs": fs,
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "tools": "; ".join(f"{v}" for v in tools.values()),
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def add_diagnosis_flags(parser: "argparse.ArgumentParser", name: str, what: str) -> None:
    """`--NAME` / `--no-NAME` (default: only when the goal is missed) and `--keep`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=name, action="store_true", default=None, help=f"always {what}")
    group.add_argument(f"--no-{name}", dest=name, action="store_false",
                       help="never (default: only when the goal is missed)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")


# --------------------------------------------------------------------------- servers with settings
# (added for bench/s3_download.py, bench/accel_download.py and the PostgreSQL runs of head_rps.py)

PG_ADMIN_URL = os.environ.get("RELEASEHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database(prefix: str = "rhbench") -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server (127.0.0.1:5432, trust auth, as in
    tests/conftest.py's postgres_url), dropped afterwards; yields its URL."""
    import secrets

    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with contextlib.suppress(Exception):
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def releasehub_server_env(data_dir: Path, env: dict[str, str], workers: int = 1, token: str | None = None,
                          log_name: str = "serve.log") -> Iterator[Releasehub]:
    """`releasehub_server` with extra RELEASEHUB_*/AWS_* settings in the environment of every command
    (database URL, storage URL, proxy or X-Accel-Redirect settings). With `token`, the database is
    taken as already set up (a second server on the same data) and no user is created."""
    data_dir.mkdir(parents=True, exist_ok=True)
    full = dict(os.environ, **env)
    if token is None:
        for args in (["db", "upgrade", "--data-dir", str(data_dir)],
                     ["users", "create", "alice", "--admin", "--local", "--data-dir", str(data_dir)]):
            result = subprocess.run([RELEASEHUB, *args], capture_output=True, text=True, timeout=180, env=full)
            if result.returncode != 0:
                raise RuntimeError(f"releasehub {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        token = [line.strip() for line in result.stdout.splitlines() if line.strip()][-1]
    port = free_port()
    log = data_dir / log_name
    proc = start_group([RELEASEHUB, "serve", "--data-dir", str(data_dir), "--port", str(port),
                        "--workers", str(workers)], log, env=full)
    hub = Releasehub(data_dir=data_dir, port=port, token=token, proc=proc, log=log, extra=dict(env))
    try:
        wait_http_ok(f"{hub.url}/api/health", timeout=60, proc=proc)
        yield hub
    finally:
        stop_group(proc)


def start_bare_app(tmp: Path) -> tuple[subprocess.Popen, int]:
    """bench/bare_app.py (the do-nothing FastAPI reference) on a free port; wait for /api/health."""
    port = free_port()
    here = Path(__file__).resolve().parent
    proc = start_group([PYTHON, str(here / "bare_app.py"), "--port", str(port)], tmp / "bare.log", cwd=here)
    return proc, port


_CURL_FIELDS = ("http_code", "size_download", "time_total", "time_starttransfer", "time_redirect",
                "num_redirects", "speed_download")


def curl_fetch(url: str, headers: Sequence[str] = (), follow: bool = False, timeout: float = 600,
               verbose_log: Path | None = None, extra: Sequence[str] = ()) -> dict[str, float]:
    """One curl GET to /dev/null; curl's own timings (-w) as a dict: http_code, size_download,
    time_total, time_starttransfer, time_redirect, num_redirects, speed_download. `follow` adds -L
    (curl then sends -H headers such as Authorization only to the first host:port); `verbose_log`
    keeps curl's -v output (request and response headers of every hop)."""
    cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", str(int(timeout)),
           "-w", " ".join(f"%{{{name}}}" for name in _CURL_FIELDS)]
    if follow:
        cmd.append("-L")
    if verbose_log is not None:
        cmd += ["-v", "--stderr", str(verbose_log)]
    for header in headers:
        cmd += ["-H", header]
    cmd += [*extra, url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    values = result.stdout.split()
    if len(values) != len(_CURL_FIELDS):
        raise RuntimeError(f"curl {url} failed ({result.returncode}): {result.stdout!r} {result.stderr!r}")
    return {name: float(value) for name, value in zip(_CURL_FIELDS, values)}


def curl_hops(verbose_log: Path) -> list[dict]:
    """The hops of a `curl -v` transfer: [{"request": [header lines], "status": int, "response": {name: [values]}}]."""
    hops: list[dict] = []
    for line in verbose_log.read_text(errors="replace").splitlines():
        if line.startswith("> "):
            text = line[2:].rstrip("\r")
            if not hops or hops[-1].get("status") is not None:
                hops.append({"request": [], "status": None, "response": {}})
            if text:
                hops[-1]["request"].append(text)
        elif line.startswith("< ") and hops:
            text = line[2:].rstrip("\r")
            if text.startswith("HTTP/"):
                hops[-1]["status"] = int(text.split()[1])
            elif ":" in text:
                name, _, value = text.partition(":")
                hops[-1]["response"].setdefault(name.strip().lower(), []).append(value.strip())
    return hops


def request_latencies(url: str, method: str = "HEAD", headers: dict[str, str] | None = None, n: int = 1000,
                      expect: int = 200, fresh: bool = False) -> list[float]:
    """Seconds of `n` sequential requests (http.client, no redirect following): the time from
    sending a request to having read its whole answer, on one keep-alive connection; with `fresh`,
    each request on a new connection (as `curl` makes), the TCP connect included."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    out: list[float] = []
    conn = None
    try:
        for _ in range(n):
            start = time.perf_counter()
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            conn.request(method, target, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            if fresh:
                conn.close()
                conn = None
            out.append(time.perf_counter() - start)
            if resp.status != expect:
                raise RuntimeError(f"{method} {url} answered {resp.status}, want {expect}")
    finally:
        if conn is not None:
            conn.close()
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return float(ordered[k])


class RetryBudget:
    """Like `measured`, with the waiting bounded over a whole benchmark: a run during which other work
    used more than `max_foreign` cores is repeated once, after waiting at most `wait_s` for a quiet
    machine, while fewer than `max_retries` repeats were spent; the less disturbed run is kept. On a
    machine shared with other test runs this keeps a benchmark to minutes; the other work of the
    kept runs is recorded (`foreign`) and reported with the figures."""

    def __init__(self, server_pids: Sequence[int] | Callable[[], Sequence[int]] = (), max_retries: int = 3,
                 max_foreign: float = 0.2, wait_s: float = 30.0) -> None:
        # A callable is asked before every run (processes that come and go, e.g. database backends).
        self.server_pids = server_pids if callable(server_pids) else list(server_pids)
        self.max_retries, self.max_foreign, self.wait_s = max_retries, max_foreign, wait_s
        self.retried = 0
        self.foreign: list[float] = []

    def _pids(self) -> list[int]:
        return list(self.server_pids()) if callable(self.server_pids) else self.server_pids

    def __call__(self, fn: Callable[[], object], retry: bool = True) -> object:
        with ForeignLoad(self._pids()) as load:
            value = fn()
        best = (load.cores, value)
        if retry and load.cores > self.max_foreign and self.retried < self.max_retries:
            self.retried += 1
            console.print(f"[yellow]other work used {load.cores:.2f} cores during that run; "
                          f"waiting (at most {self.wait_s:.0f} s) and repeating it once[/yellow]")
            wait_for_quiet(max_wait_s=self.wait_s)
            with ForeignLoad(self._pids()) as again:
                value = fn()
            if again.cores < best[0]:
                best = (again.cores, value)
        self.foreign.append(best[0])
        return best[1]


def postgres_backend_pids(database_url: str) -> list[int]:
    """Pids of the PostgreSQL server processes serving connections to the database of `database_url`
    (the work a releasehub on PostgreSQL makes the database do is the server's, not other work)."""
    import psycopg

    name = database_url.rsplit("/", 1)[-1]
    with contextlib.suppress(Exception):
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                (name,)).fetchall()
            return [int(r[0]) for r in rows]
    return []
