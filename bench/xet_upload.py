"""Uploads with the default client (`huggingface_hub` + `hf_xet`, through Xet) vs the same upload over LFS.

One `releasehub serve` on a temp data dir, one large random file (default 1 GiB). Every upload is
a whole command: a fresh Python process running `HfApi().upload_file(...)` with HF_ENDPOINT and
HF_TOKEN set, into a repo of its own, with its own fresh HF_HOME (so the client's shard cache
cannot deduplicate across the compared uploads); Xet uploads run without HF_HUB_DISABLE_XET, LFS
uploads with HF_HUB_DISABLE_XET=1. So that the server cannot deduplicate either (it keeps the
sha256 and Xet file hashes it has already seen), each upload sends a variant of the file whose
first 32 bytes are a tag of its own: a new sha256, a new Xet file hash. Rounds alternate which
one goes first; medians are reported.

During every upload the server's process group is sampled (VmRSS summed over its processes,
from /proc, every 50 ms) and so is the CPU of each thread of the client and the server.

Then 1% of the first Xet upload's file (10 MiB at 1 GiB, in the middle) is changed and uploaded
again to the same repo with the same HF_HOME, so the client deduplicates against the shards it
cached: wall time against the first upload's, and the xorb bytes the server received for each
(`xet_xorb_claims.received_bytes` of the repo, read from the server's SQLite database).

Every upload is checked byte for byte: sha256 of a GET of /resolve against the local file.

Two floors of the re-upload, on the same file in the same run: the server's (one sha256 pass over
the file, which it must hash whole before storing it) and the client's (`hf_xet.hash_files` of the
file: the content-defined chunking and the chunk and file hashes that the unchanged client must
compute before it knows which chunks to send), each with the page cache warm.

With `--link-mbit N`, the same rounds (Xet, LFS, the re-upload) run once more with the traffic
between the client and the server's TCP port shaped to N Mbit/s in each direction (Linux traffic
control on `lo`: an htb root qdisc whose default class is not limited, and two classes of N mbit
that u32 filters on the server's port, as destination and as source, send the packets to). On
loopback the client and the server share this machine's cores and everything is CPU-bound; over
a link the bytes sent count. Needs `tc` and root; without them (or if `lo` already has a root
qdisc of someone else's, or a tc command fails) the link runs are skipped with a message. Only
each timed upload is shaped (creating the repos and the checks run unshaped), and the qdisc is
always removed afterwards (and at exit).

    .venv/bin/python bench/xet_upload.py [--size-mib 1024] [--rounds 3] [--profile | --no-profile]
                                         [--link-mbit N]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import os
import random
import re
import resource
import signal
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MIB, PYTHON, ForeignLoad, WarmMemory, add_diagnosis_flags, bench_tmpdir, code_fingerprint, console,
    ensure_py_spy, fmt, group_pids, make_random_file, median, print_table, process_cpu_s, releasehub_server,
    summarize_profile, wait_for_quiet,
)

GOAL_RATIO = 1.2  # Xet wall time / LFS wall time, at most
GOAL_RSS_MIB = 512  # peak RSS of the server's processes during a Xet upload, under
GOAL_REUPLOAD = 10.0  # first Xet upload / 1%-changed re-upload, at least
TAG_BYTES = 32
PATH_IN_REPO = "model.bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

CLIENT = textwrap.dedent("""
    import sys
    import huggingface_hub.constants as c
    repo, path, mode = sys.argv[1:4]
    assert c.HF_HUB_DISABLE_XET == (mode == "lfs"), (mode, c.HF_HUB_DISABLE_XET)
    if mode == "xet":
        import hf_xet  # noqa: F401  (the default client: hf_xet installed and used)
    from huggingface_hub import HfApi
    HfApi().upload_file(path_or_fileobj=path, path_in_repo=sys.argv[4], repo_id=repo)
""")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- sampling /proc

def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _hwm_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, utime + stime ticks) of one process."""
    out: dict[int, tuple[str, int]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = (task / "stat").read_text()
                name = text[text.index("(") + 1:text.rindex(")")]
                fields_ = text.rsplit(")", 1)[1].split()
                out[int(task.name)] = (name, int(fields_[11]) + int(fields_[12]))
    return out


class Sampler:
    """Every `interval` s: the summed RSS of the server's processes (peak kept) and the CPU ticks
    of every thread of the server and of the client process (last value seen per thread)."""

    def __init__(self, server_pids: list[int], interval: float = 0.05) -> None:
        self.server_pids = server_pids
        self.interval = interval
        self.client_pid: int | None = None
        self.peak_rss = 0
        self.samples = 0
        self._start: dict[tuple[str, int], tuple[str, int]] = {}
        self._last: dict[tuple[str, int], tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        rss = sum(_rss_bytes(pid) for pid in self.server_pids)
        self.peak_rss = max(self.peak_rss, rss)
        self.samples += 1
        for side, pids in (("server", self.server_pids), ("client", [self.client_pid] if self.client_pid else [])):
            for pid in pids:
                for tid, value in _threads(pid).items():
                    self._start.setdefault((side, tid), (value[0], 0 if side == "client" else value[1]))
                    self._last[(side, tid)] = value

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "Sampler":
        self._sample()  # server threads' starting ticks
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def thread_cpu(self) -> dict[str, dict[str, float]]:
        """side -> thread name -> CPU seconds during the sampled span (threads of one name summed)."""
        out: dict[str, dict[str, float]] = {"server": defaultdict(float), "client": defaultdict(float)}
        for (side, tid), (name, ticks) in self._last.items():
            start = self._start.get((side, tid), (name, 0))[1]
            if ticks - start > 0:
                out[side][name] += (ticks - start) / CLK_TCK
        return {side: dict(sorted(((k, round(v, 2)) for k, v in d.items()), key=lambda kv: -kv[1]))
                for side, d in out.items()}


# --------------------------------------------------------------------------- a shaped link (tc on lo)

TC_DEV = "lo"  # loopback only
TC_UP, TC_DOWN = "1:20", "1:30"  # client -> server (dport), server -> client (sport)
_TC = {"installed": False, "atexit": False}


class LinkUnavailable(RuntimeError):
    """The shaped-link runs cannot run here: no tc, not root, lo's root qdisc taken, a tc command failed."""


def _tc(*args: str) -> str:
    try:
        done = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LinkUnavailable(f"`tc {' '.join(args)}`: {exc}") from exc
    if done.returncode != 0:
        raise LinkUnavailable(f"`tc {' '.join(args)}` failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def lo_root_qdisc() -> str:
    """The root qdisc line of `tc qdisc show dev lo` ('' when none is shown)."""
    return next((line.strip() for line in _tc("qdisc", "show", "dev", TC_DEV).splitlines()
                 if " root " in f"{line} "), "")


def link_problem() -> str | None:
    """Why the link cannot be shaped here, or None."""
    if shutil.which("tc") is None:
        return "`tc` (iproute2) is not installed"
    if os.geteuid() != 0:
        return "not root: traffic control on lo needs root (CAP_NET_ADMIN)"
    try:
        root = lo_root_qdisc()
    except LinkUnavailable as exc:
        return str(exc)
    if root and root.split()[1] != "noqueue":
        return f"lo already has a root qdisc that is not its default, left alone: {root!r}"
    return None


def unshape() -> None:
    """Remove the htb root qdisc from lo if this process added it (also run at exit)."""
    if not _TC["installed"]:
        return
    try:
        if lo_root_qdisc().startswith("qdisc htb 1: root"):
            _tc("qdisc", "del", "dev", TC_DEV, "root")
        _TC["installed"] = False
    except LinkUnavailable as exc:
        console.print(f"[red]could not remove the shaping qdisc from {TC_DEV} ({exc}); remove it with "
                      f"`tc qdisc del dev {TC_DEV} root`[/red]")


def shape_port(port: int, mbit: int) -> None:
    """Shape the TCP traffic to and from `port` on lo to `mbit` Mbit/s in each direction; the rest of
    lo's traffic goes to a default class that is not limited. Raises LinkUnavailable."""
    problem = link_problem()
    if problem:
        raise LinkUnavailable(problem)
    if not _TC["atexit"]:
        atexit.register(unshape)
        _TC["atexit"] = True
    _TC["installed"] = True  # before the add: unshape() only deletes an htb root, which then is ours
    try:
        _tc("qdisc", "add", "dev", TC_DEV, "root", "handle", "1:", "htb", "default", "10")
        _tc("class", "add", "dev", TC_DEV, "parent", "1:", "classid", "1:10", "htb", "rate", "100gbit",
            "quantum", "200000")
        for classid in (TC_UP, TC_DOWN):
            _tc("class", "add", "dev", TC_DEV, "parent", "1:", "classid", classid, "htb", "rate", f"{mbit}mbit",
                "ceil", f"{mbit}mbit", "quantum", "200000")
        for side, classid in (("dport", TC_UP), ("sport", TC_DOWN)):
            _tc("filter", "add", "dev", TC_DEV, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", side, str(port), "0xffff", "flowid", classid)
    except BaseException:
        unshape()
        raise


_CLASS_SENT = re.compile(r"class htb (1:\d+) .*?\n\s*Sent (\d+) bytes", re.S)


def class_sent_bytes() -> dict[str, int]:
    """classid -> bytes sent through it, from `tc -s class show dev lo`."""
    return {cid: int(n) for cid, n in _CLASS_SENT.findall(_tc("-s", "class", "show", "dev", TC_DEV))}


@contextlib.contextmanager
def shaped_link(port: int, mbit: int):
    """`shape_port` for the span of the block; yields a dict that gets the bytes each direction sent
    through its limited class (keys "up", "down") when the block ends."""
    shape_port(port, mbit)
    wire: dict[str, int] = {}
    try:
        yield wire
        sent = class_sent_bytes()
        wire.update(up=sent.get(TC_UP, 0), down=sent.get(TC_DOWN, 0))
    finally:
        unshape()


def wire_floor_s(size: int, mbit: int) -> float:
    """Seconds the file's bytes alone take on an `mbit` Mbit/s link."""
    return size * 8 / (mbit * 1e6)


# --------------------------------------------------------------------------- one upload

@dataclass
class Upload:
    mode: str  # "xet" | "lfs"
    repo: str
    home: Path
    tag: int
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    peak_rss: int = 0
    foreign: float = 0.0
    received_bytes: int = 0
    sha256: str = ""
    verified: bool = False
    thread_cpu: dict = field(default_factory=dict)
    wire: dict = field(default_factory=dict)  # bytes through the shaped link's classes: up, down


def set_tag(path: Path, tag: int) -> None:
    """The file's first TAG_BYTES bytes become this upload's own tag (everything else unchanged)."""
    with open(path, "r+b") as handle:
        handle.write(hashlib.sha256(f"releasehub bench variant {tag}".encode()).digest()[:TAG_BYTES])


def file_sha256(path: Path) -> str:
    """sha256 of the file; also reads it into the page cache before the timed upload."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        buf = bytearray(8 * MIB)
        view = memoryview(buf)
        while n := handle.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def client_env(hub, home: Path, mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN", "HF_HOME")}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=hub.token, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    if mode == "lfs":
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def client_cmd(up: Upload, path: Path, hub) -> list[str]:
    return [PYTHON, "-c", CLIENT, f"{hub.user}/{up.repo}", str(path), up.mode, PATH_IN_REPO]


def create_repo(hub, name: str) -> None:
    import httpx

    answer = httpx.post(f"{hub.url}/api/repos/create", json={"name": name, "type": "model"},
                        headers={"Authorization": f"Bearer {hub.token}"}, timeout=60)
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"repo creation of {name} failed: {answer.status_code} {answer.text}")


def db_figures(hub, repo: str) -> tuple[int, int]:
    """(sum of xet_xorb_claims.received_bytes, xet_files rows) of the repo, from the server's database."""
    db = sqlite3.connect(f"file:{hub.data_dir / 'releasehub.db'}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT (SELECT COALESCE(SUM(c.received_bytes), 0) FROM xet_xorb_claims c WHERE c.repo_id = r.id), "
            "(SELECT COUNT(*) FROM xet_files f WHERE f.repo_id = r.id) "
            "FROM repos r WHERE r.namespace = ? AND r.name = ? AND r.repo_type = 'model'",
            (hub.user, repo)).fetchone()
    finally:
        db.close()
    if row is None:
        raise RuntimeError(f"repo {repo} not in the server's database")
    return int(row[0]), int(row[1])


def resolve_sha256(hub, repo: str) -> str:
    import httpx

    digest = hashlib.sha256()
    with httpx.stream("GET", f"{hub.url}/{hub.user}/{repo}/resolve/main/{PATH_IN_REPO}",
                      headers={"Authorization": f"Bearer {hub.token}"}, follow_redirects=True,
                      timeout=600) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"GET /resolve of {repo}: HTTP {answer.status_code}")
        for piece in answer.iter_bytes(8 * MIB):
            digest.update(piece)
    return digest.hexdigest()


HASH_FLOOR = textwrap.dedent("""
    import sys, time
    import hf_xet
    path, runs = sys.argv[1], int(sys.argv[2])
    for _ in range(runs):
        start = time.perf_counter()
        info = hf_xet.hash_files([path])
        print("floor", time.perf_counter() - start, info[0].file_size)
""")


def client_hash_floor(path: Path, home: Path, runs: int = 3) -> list[float]:
    """Wall times of `hf_xet.hash_files([path])` (Xet chunking and hashing, no upload) in one fresh
    client process, imports left out, page cache warm. No sha256: hash_files computes none, and
    hf_xet's sha256 of an upload runs on another thread (a floor leaves it out)."""
    file_sha256(path)  # reads the file into the page cache (untimed)
    env = {k: v for k, v in os.environ.items() if k != "HF_HOME"}
    env.update(HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run([PYTHON, "-c", HASH_FLOOR, str(path), str(runs)], env=env, check=True,
                          capture_output=True, text=True, timeout=1800)
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("floor ")]
    size = path.stat().st_size
    if len(rows) != runs or any(int(r[2]) != size for r in rows):
        raise RuntimeError(f"hf_xet.hash_files of {path} ({size} bytes): unexpected output {done.stdout[-2000:]!r}")
    return [float(r[1]) for r in rows]


def client_startup_s(runs: int = 3) -> float:
    """Wall time of the client command's start-up alone: the interpreter and its imports."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", "import hf_xet; from huggingface_hub import HfApi"], check=True,
                       capture_output=True, timeout=120)
        times.append(time.perf_counter() - start)
    return median(times)


def upload_once(hub, up: Upload, path: Path, pids: list[int], warm_mib: int, link_mbit: int | None = None) -> Upload:
    """One timed upload (the whole client command), sampled; then the server-side checks. With
    `link_mbit`, the upload alone runs over the shaped link (see `shaped_link`)."""
    before_bytes, _ = db_figures(hub, up.repo)
    with shaped_link(hub.port, link_mbit) if link_mbit else contextlib.nullcontext({}) as wire:
        server0, client0 = process_cpu_s(pids), children_cpu_s()
        with WarmMemory(warm_mib), ForeignLoad(pids) as load, Sampler(pids) as sampler:
            start = time.perf_counter()
            proc = subprocess.Popen(client_cmd(up, path, hub), env=client_env(hub, up.home, up.mode),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            sampler.client_pid = proc.pid
            try:
                out, _ = proc.communicate(timeout=3600)
            except BaseException:  # Ctrl-C, a timeout: the client does not outlive the benchmark
                proc.kill()
                proc.wait(timeout=30)
                raise
            up.wall_s = time.perf_counter() - start
        up.server_cpu_s = process_cpu_s(pids) - server0
        up.client_cpu_s = children_cpu_s() - client0
    up.wire = dict(wire)
    if proc.returncode != 0:
        raise RuntimeError(f"{up.mode} upload to {up.repo} failed ({proc.returncode}):\n"
                           f"{out.decode(errors='replace')[-4000:]}\n--- server log ---\n"
                           f"{hub.log.read_text(errors='replace')[-3000:] if hub.log else ''}")
    up.peak_rss = sampler.peak_rss
    up.foreign = load.cores
    up.thread_cpu = sampler.thread_cpu()
    after_bytes, xet_rows = db_figures(hub, up.repo)
    up.received_bytes = after_bytes - before_bytes
    if up.mode == "xet" and (up.received_bytes <= 0 and xet_rows == 0):
        raise RuntimeError(f"Xet upload to {up.repo}: the server recorded no xorb and no Xet file")
    if up.mode == "lfs" and (after_bytes or xet_rows):
        raise RuntimeError(f"LFS upload to {up.repo} went through Xet ({after_bytes} xorb bytes, {xet_rows} files)")
    return up


def verify(hub, up: Upload) -> None:
    got = resolve_sha256(hub, up.repo)
    up.verified = got == up.sha256
    if not up.verified:
        raise RuntimeError(f"{up.mode} upload to {up.repo}: GET /resolve has sha256 {got}, the file {up.sha256}")


# --------------------------------------------------------------------------- profiling

def _server_bucket(stack: list[str]) -> str:
    text = ";".join(stack)
    leaf = stack[-1]
    if "ThreadedSha256._run" in text:
        return "the blob writer's sha256 thread (assembly or reconstruction)"
    if "Assembly." in text:
        return "assembly: writing the file's blob while its xorbs arrive (in turn or re-read)"
    if "_reconstruct" in text or "_write_terms" in text:
        if "write" in leaf.lower() or "BlobWriter" in text and "iter_unpacked" not in text:
            return "shard: reconstructing the file (blob writer: sha256, write, fsync)"
        return "shard: reconstructing the file (reading and unpacking chunks from the xorbs)"
    if "verify_file" in text or "parse_shard" in text or "register_shard" in text:
        return "shard: parsing and verifying (terms, verification hashes, file hash)"
    if "store_xorb" in text or "read_xorb" in text:
        if "fsync" in leaf:
            return "xorb: fsync of the spooled xorb"
        return "xorb: verifying (chunk headers, decompression, chunk hashes, xorb hash)"
    if "upload_xorb" in text or "Request.stream" in leaf or "starlette/requests.py" in leaf:
        return "xorb: receiving the body and spooling it to disk"
    if "sqlalchemy/" in text:
        return "SQL"
    if leaf.startswith("MPServer._spawn_asgi_lifespan_worker"):
        return "granian runtime (native code on the worker's main thread)"
    if leaf.startswith(("Condition.wait", "Queue.get", "Event.wait")):
        return "waiting (thread pool)"
    return "other (routing, other requests of the upload)"


def _client_bucket(stack: list[str]) -> str:
    text = ";".join(stack)
    if "importlib" in text or "<module>" in text and "upload_file" not in text:
        return "start-up (imports)"
    if "sha_fileobj" in text or "sha256" in text or "hashlib" in text:
        return "sha256 of the file (huggingface_hub, before the upload)"
    if "hf_xet" in text or "xet" in text.lower():
        return "waiting on hf_xet (Rust: chunking, hashing, uploading)"
    if "httpx" in text or "httpcore" in text or "h11/" in text or "requests" in text:
        return "HTTP (preupload, LFS, commit)"
    return "other (API calls, commit)"


def profile_uploads(hub, path: Path, tmp: Path, size_mib: int, warm_mib: int, change: tuple[int, int]) -> dict:
    """An extra, untimed Xet upload and its 1%-changed re-upload, py-spy on the server worker and
    on the client (Python threads only: hf_xet's Rust threads show in the thread CPU figures)."""
    py_spy = ensure_py_spy()
    rate = 100
    out: dict = {}
    worker = group_pids(hub.proc)[-1]
    home = tmp / "hf-home-profile"
    for step in ("first", "reupload"):
        if step == "first":
            create_repo(hub, "xet-profile")
            set_tag(path, 10_000)
            restore_middle(path, change)
        else:
            change_middle(path, change, seed=2)
        file_sha256(path)
        os.sync()
        server_raw, client_raw = tmp / f"server-{step}.collapsed", tmp / f"client-{step}.collapsed"
        spy = subprocess.Popen([py_spy, "record", "--pid", str(worker), "--rate", str(rate), "--duration", "3600",
                                "--nonblocking", "--format", "raw", "--output", str(server_raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            up = Upload("xet", "xet-profile", home, 10_000)
            with WarmMemory(warm_mib):
                start = time.perf_counter()
                done = subprocess.run([py_spy, "record", "--rate", str(rate), "--nonblocking", "--format", "raw",
                                       "--output", str(client_raw), "--", *client_cmd(up, path, hub)],
                                      env=client_env(hub, home, "xet"), capture_output=True, timeout=3600)
                wall = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"profiled upload failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}")
        finally:
            spy.send_signal(2)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(timeout=10)
        out[step] = {"wall_s": wall}
        for side, raw, bucket in (("server", server_raw, _server_bucket), ("client", client_raw, _client_bucket)):
            if raw.exists():
                summary = summarize_profile(raw, top=12, bucket=bucket)
                summary["active_s"] = summary["samples"] / rate
                out[step][side] = summary
    return out


# --------------------------------------------------------------------------- the 1% change

def change_span(size: int) -> tuple[int, int]:
    """(offset, length) of the changed 1%: 10 MiB at 1 GiB, centred."""
    length = max(size // 100, 1)
    length -= length % 4096 if length > 4096 else 0
    return (size - length) // 2, length


_ORIGINAL: dict[int, bytes] = {}


def change_middle(path: Path, change: tuple[int, int], seed: int = 1) -> None:
    offset, length = change
    with open(path, "r+b") as handle:
        if offset not in _ORIGINAL:
            handle.seek(offset)
            _ORIGINAL[offset] = handle.read(length)
        handle.seek(offset)
        handle.write(random.Random(seed).randbytes(length))


def restore_middle(path: Path, change: tuple[int, int]) -> None:
    offset, length = change
    if offset in _ORIGINAL:
        with open(path, "r+b") as handle:
            handle.seek(offset)
            handle.write(_ORIGINAL[offset])


# --------------------------------------------------------------------------- the benchmark

def run(size_mib: int = 1024, rounds: int = 3, profile: bool | None = None, keep: bool = False,
        warm: bool = True, link_mbit: int | None = None) -> dict:
    code_before = code_fingerprint()
    tmp = bench_tmpdir("xet-upload")
    xet: list[Upload] = []
    lfs: list[Upload] = []
    reupload: Upload | None = None
    retried = 0
    tag = 0
    profiled = None
    link_xet: list[Upload] = []
    link_lfs: list[Upload] = []
    link_re: Upload | None = None
    link_skipped: str | None = None
    link_retried = 0
    hash_s: list[float] = []  # sha256 of the whole file, page cache warm: what any upload's check costs

    def timed_sha256(path: Path) -> str:
        start = time.perf_counter()
        digest = file_sha256(path)
        hash_s.append(time.perf_counter() - start)
        return digest

    try:
        path = make_random_file(tmp / "src" / PATH_IN_REPO, size_mib)
        size = path.stat().st_size
        change = change_span(size)
        warm_mib = size_mib * 3 if warm else 0  # Xet writes the spooled xorbs and the blob: about 2x the file
        quiet = wait_for_quiet()
        with releasehub_server(tmp / "data") as hub:
            pids = group_pids(hub.proc)

            def attempt(mode: str, label: str, link: int | None = None) -> Upload:
                """One upload, repeated (new tag, repo and HF_HOME) while other work shared the CPUs.
                With `link`, over the shaped link (its sha256 passes are not the floor's samples)."""
                nonlocal tag, retried, link_retried
                best: Upload | None = None
                for n in range(1, 4):
                    tag += 1
                    up = Upload(mode, f"{label}-{n}", tmp / f"hf-home-{label}-{n}", tag)
                    create_repo(hub, up.repo)
                    set_tag(path, up.tag)
                    up.sha256 = file_sha256(path) if link else timed_sha256(path)
                    os.sync()
                    upload_once(hub, up, path, pids, warm_mib, link)
                    verify(hub, up)
                    console.print(f"  {label} try {n}: {up.wall_s:.2f} s, server peak RSS "
                                  f"{up.peak_rss / MIB:,.0f} MiB, xorb bytes {up.received_bytes:,}, "
                                  f"other work {up.foreign:.2f} cores"
                                  + (f", through the link {up.wire.get('up', 0):,} bytes up, "
                                     f"{up.wire.get('down', 0):,} down" if link else ""))
                    if best is None or up.foreign < best.foreign:
                        best = up
                    if up.foreign <= 0.2:
                        break
                    if link:
                        link_retried += 1
                    else:
                        retried += 1
                    console.print(f"[yellow]other work used {up.foreign:.2f} cores during that upload; "
                                  "retrying[/yellow]")
                    wait_for_quiet(max_wait_s=120)
                assert best is not None
                return best

            for i in range(rounds):
                order = ("xet", "lfs") if i % 2 == 0 else ("lfs", "xet")
                for mode in order:
                    (xet if mode == "xet" else lfs).append(attempt(mode, f"{mode}{i}"))

            # The 1%-changed re-upload: the first Xet upload's file (its tag), 1% changed, into its
            # repo with its HF_HOME (the client's shard cache).
            first = xet[0]
            set_tag(path, first.tag)
            change_middle(path, change)
            best_re: Upload | None = None
            for n in range(1, 4):
                up = Upload("xet", first.repo, first.home, first.tag)
                up.sha256 = timed_sha256(path)
                os.sync()
                upload_once(hub, up, path, pids, warm_mib)
                verify(hub, up)
                console.print(f"  re-upload try {n}: {up.wall_s:.2f} s, xorb bytes {up.received_bytes:,}")
                if best_re is None or up.foreign < best_re.foreign:
                    best_re = up
                if up.foreign <= 0.2:
                    break
                # A second try re-uploads a newly changed file (the previous one is now cached too).
                retried += 1
                change_middle(path, change, seed=n + 1)
                wait_for_quiet(max_wait_s=120)
            reupload = best_re
            # Server memory high-water marks over the whole run (all uploads, LFS included; info).
            hwm = {pid: _hwm_bytes(pid) for pid in pids}
            startup = client_startup_s()
            # The client's floor: the same file (the re-upload's), with nothing to upload.
            client_floor_s = client_hash_floor(path, tmp / "hf-home-hash")

            if link_mbit:
                link_skipped = link_problem()
                if link_skipped is None:
                    try:
                        with shaped_link(hub.port, link_mbit):  # a first try of the tc commands
                            pass
                    except LinkUnavailable as exc:
                        link_skipped = str(exc)
                if link_skipped:
                    console.print(f"[yellow]skipping the runs over a shaped {link_mbit} Mbit/s link: "
                                  f"{link_skipped}[/yellow]")
                else:
                    console.print(f"[bold]over a shaped {link_mbit} Mbit/s link[/bold] (tc htb on {TC_DEV}, "
                                  f"port {hub.port}); the file's bytes alone take "
                                  f"{wire_floor_s(size, link_mbit):.2f} s on it")
                    try:
                        restore_middle(path, change)
                        for i in range(rounds):
                            order = ("xet", "lfs") if i % 2 == 0 else ("lfs", "xet")
                            for mode in order:
                                (link_xet if mode == "xet" else link_lfs).append(
                                    attempt(mode, f"link-{mode}{i}", link_mbit))
                        # The re-upload, as above: the first shaped Xet upload's file, another 1% changed.
                        lfirst = link_xet[0]
                        set_tag(path, lfirst.tag)
                        for n in range(1, 4):
                            change_middle(path, change, seed=100 + n)
                            up = Upload("xet", lfirst.repo, lfirst.home, lfirst.tag)
                            up.sha256 = file_sha256(path)
                            os.sync()
                            upload_once(hub, up, path, pids, warm_mib, link_mbit)
                            verify(hub, up)
                            console.print(f"  link re-upload try {n}: {up.wall_s:.2f} s, xorb bytes "
                                          f"{up.received_bytes:,}, through the link {up.wire.get('up', 0):,} "
                                          "bytes up")
                            if link_re is None or up.foreign < link_re.foreign:
                                link_re = up
                            if up.foreign <= 0.2:
                                break
                            link_retried += 1
                            wait_for_quiet(max_wait_s=120)
                    except Exception as exc:  # noqa: BLE001 - the loopback figures stand; reported
                        link_skipped = (f"a tc command failed during the link runs: {exc}"
                                        if isinstance(exc, LinkUnavailable)
                                        else f"the link runs failed: {type(exc).__name__}: {exc}"[:4000])
                        console.print(f"[red]stopping the link runs: {link_skipped}[/red]")
                        link_xet, link_lfs, link_re = [], [], None

            ratio = median([u.wall_s for u in xet]) / median([u.wall_s for u in lfs])
            peak_xet = max([u.peak_rss for u in xet] + [reupload.peak_rss])
            re_ratio = first.wall_s / reupload.wall_s
            missed = ratio > GOAL_RATIO or peak_xet >= GOAL_RSS_MIB * MIB or re_ratio < GOAL_REUPLOAD
            if profile or (profile is None and missed):
                console.print("[yellow]profiling one extra (untimed) Xet upload and re-upload with py-spy...[/yellow]")
                try:
                    profiled = profile_uploads(hub, path, tmp, size_mib, warm_mib, change)
                except Exception as exc:  # noqa: BLE001 - reported, the measurement stands
                    profiled = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        unshape()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            console.print(f"kept {tmp}")

    assert reupload is not None
    mb = size / 1e6
    xet_s = [u.wall_s for u in xet]
    lfs_s = [u.wall_s for u in lfs]
    xet_med, lfs_med = median(xet_s), median(lfs_s)
    first = xet[0]
    secs = lambda us, attr: [round(getattr(u, attr), 3) for u in us]  # noqa: E731
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "xet_upload",
        "title": f"Upload of a {size_mib} MiB file with the default client (Xet) vs over LFS",
        "unit": "s",
        "releasehub": xet_med,
        "reference": lfs_med,
        "reference_name": "the same upload over LFS (HF_HUB_DISABLE_XET=1)",
        "ratio": ratio,
        "goal": GOAL_RATIO,
        "met": ratio <= GOAL_RATIO,
        "rss_goal_mib": GOAL_RSS_MIB,
        "peak_rss_xet_mib": peak_xet / MIB,
        "peak_rss_xet_runs_mib": [round(u.peak_rss / MIB, 1) for u in xet],
        "peak_rss_lfs_mib": max(u.peak_rss for u in lfs) / MIB,
        "peak_rss_reupload_mib": reupload.peak_rss / MIB,
        "rss_met": peak_xet < GOAL_RSS_MIB * MIB,
        "server_hwm_mib": {str(pid): round(v / MIB, 1) for pid, v in hwm.items()},
        "reupload_goal": GOAL_REUPLOAD,
        "first_xet_s": first.wall_s,
        "reupload_s": reupload.wall_s,
        "reupload_ratio": re_ratio,
        "reupload_ratio_vs_median": xet_med / reupload.wall_s,
        "reupload_met": re_ratio >= GOAL_REUPLOAD,
        # The server must hash the whole reconstructed file before it may store it (the shard's
        # sha256 is the client's word), and one sha256 pass is serial: no re-upload of this file
        # can take less, whatever is deduplicated. The bound on the re-upload ratio follows.
        "sha256_runs_s": [round(v, 3) for v in hash_s],
        "reupload_floor_s": median(hash_s),
        "reupload_ratio_bound": first.wall_s / median(hash_s),
        # The unchanged client chunks and hashes the whole file (hf_xet) before it knows which
        # chunks to send: no re-upload with it can take less, whatever the server does.
        "client_hash_floor_runs_s": [round(v, 3) for v in client_floor_s],
        "client_hash_floor_s": median(client_floor_s),
        "reupload_client_bound": first.wall_s / median(client_floor_s),
        "changed_bytes": change[1],
        "changed_offset": change[0],
        "first_received_bytes": first.received_bytes,
        "reupload_received_bytes": reupload.received_bytes,
        "xet_received_bytes_runs": [u.received_bytes for u in xet],
        "file_bytes": size,
        "size_mib": size_mib,
        "rounds": rounds,
        "xet_runs_s": xet_s,
        "lfs_runs_s": lfs_s,
        "xet_client_cpu_s": secs(xet, "client_cpu_s"),
        "lfs_client_cpu_s": secs(lfs, "client_cpu_s"),
        "xet_server_cpu_s": secs(xet, "server_cpu_s"),
        "lfs_server_cpu_s": secs(lfs, "server_cpu_s"),
        "reupload_client_cpu_s": reupload.client_cpu_s,
        "reupload_server_cpu_s": reupload.server_cpu_s,
        "thread_cpu": {"xet": first.thread_cpu, "lfs": lfs[0].thread_cpu, "reupload": reupload.thread_cpu},
        "client_startup_s": startup,
        "verified": all(u.verified for u in [*xet, *lfs, reupload]),
        "uploads_verified": len([*xet, *lfs, reupload]),
        "cpu_busy_before": quiet,
        "foreign_cores": [u.foreign for u in [*xet, *lfs, reupload]],
        "retried": retried,
        "warm_memory_mib": warm_mib,
        "profile": profiled,
    }
    if link_mbit:
        result["link_mbit"] = link_mbit
        if link_skipped or link_re is None:
            result["link_skipped"] = link_skipped or "no link runs"
        else:
            link_result(result, link_xet, link_lfs, link_re, size, link_mbit, link_retried)
    runs = lambda xs: ", ".join(f"{x:.2f}s" for x in xs)  # noqa: E731
    print_table(result["title"], ["", "value", "runs / detail"], [
        ["Xet upload, median", f"{xet_med:.2f}s", runs(xet_s)],
        ["LFS upload, median", f"{lfs_med:.2f}s", runs(lfs_s)],
        ["ratio Xet / LFS", f"{ratio:.2f}x", f"goal <= {GOAL_RATIO}x: {'met' if result['met'] else 'NOT met'}"],
        ["server peak RSS during Xet uploads", f"{peak_xet / MIB:,.0f} MiB",
         f"goal < {GOAL_RSS_MIB} MiB: {'met' if result['rss_met'] else 'NOT met'}; LFS "
         f"{result['peak_rss_lfs_mib']:,.0f} MiB"],
        ["1%-changed re-upload", f"{reupload.wall_s:.2f}s", f"first Xet upload {first.wall_s:.2f}s"],
        ["ratio first / re-upload", f"{re_ratio:.2f}x",
         f"goal >= {GOAL_REUPLOAD}x: {'met' if result['reupload_met'] else 'NOT met'}"],
        ["re-upload floor: one sha256 pass over the file", f"{median(hash_s):.2f}s",
         f"so at most {first.wall_s / median(hash_s):.1f}x faster than the first upload"],
        ["re-upload floor, client: hf_xet.hash_files of the file", f"{result['client_hash_floor_s']:.2f}s",
         f"so at most {result['reupload_client_bound']:.1f}x faster than the first upload, with any server "
         f"(runs {runs(client_floor_s)})"],
        ["xorb bytes received: first, re-upload", f"{first.received_bytes:,}", f"{reupload.received_bytes:,}"],
        ["CPU per Xet upload: client, server", "", f"{runs(result['xet_client_cpu_s'])}; "
                                                   f"{runs(result['xet_server_cpu_s'])}"],
        ["CPU per LFS upload: client, server", "", f"{runs(result['lfs_client_cpu_s'])}; "
                                                   f"{runs(result['lfs_server_cpu_s'])}"],
        ["CPU of the re-upload: client, server", "", f"{reupload.client_cpu_s:.2f}s; {reupload.server_cpu_s:.2f}s"],
        ["every upload byte-identical (GET /resolve sha256)", str(result["verified"]),
         f"{result['uploads_verified']} uploads"],
        ["start-up of the client command (imports only)", f"{startup:.2f}s", ""],
        ["throughput, Xet / LFS (MB/s)", f"{fmt(mb / xet_med)} / {fmt(mb / lfs_med)}", ""],
    ])
    if "link_xet_runs_s" in result:
        print_link_table(result)
    elif link_mbit:
        console.print(f"[yellow]no runs over a shaped link: {result['link_skipped']}[/yellow]")
    if profiled and not profiled.get("error"):
        for step in ("first", "reupload"):
            for side in ("server", "client"):
                prof = profiled.get(step, {}).get(side)
                if prof:
                    print_table(f"py-spy, {side}, {step} ({prof['active_s']:.1f}s of samples in a "
                                f"{profiled[step]['wall_s']:.1f}s upload)", ["where", "% of samples"],
                                [[k, v] for k, v in prof["buckets"]])
    return result


def link_result(result: dict, xet: list[Upload], lfs: list[Upload], reupload: Upload, size: int, mbit: int,
                retried: int) -> None:
    """The shaped-link figures, under link_* keys of their own (the loopback keys keep their meaning)."""
    xet_med, lfs_med = median([u.wall_s for u in xet]), median([u.wall_s for u in lfs])
    first = xet[0]
    result.update({
        "link_mbit": mbit,
        "link_how": f"tc htb on {TC_DEV}: the server port's traffic (u32 on dport and sport) at {mbit} mbit "
                    "in each direction, the rest not limited; only the timed upload shaped",
        "link_wire_floor_s": wire_floor_s(size, mbit),
        "link_xet_runs_s": [u.wall_s for u in xet],
        "link_lfs_runs_s": [u.wall_s for u in lfs],
        "link_xet_s": xet_med,
        "link_lfs_s": lfs_med,
        "link_ratio": xet_med / lfs_med,
        "link_first_xet_s": first.wall_s,
        "link_reupload_s": reupload.wall_s,
        "link_reupload_ratio": first.wall_s / reupload.wall_s,
        "link_reupload_received_bytes": reupload.received_bytes,
        "link_first_received_bytes": first.received_bytes,
        # Bytes through the limited classes (TCP/IP headers included): client -> server, server -> client.
        "link_xet_wire_up_bytes": [u.wire.get("up", 0) for u in xet],
        "link_lfs_wire_up_bytes": [u.wire.get("up", 0) for u in lfs],
        "link_reupload_wire_up_bytes": reupload.wire.get("up", 0),
        "link_wire_down_bytes": {"xet": [u.wire.get("down", 0) for u in xet],
                                 "lfs": [u.wire.get("down", 0) for u in lfs],
                                 "reupload": reupload.wire.get("down", 0)},
        "link_peak_rss_xet_mib": max(u.peak_rss for u in [*xet, reupload]) / MIB,
        "link_peak_rss_lfs_mib": max(u.peak_rss for u in lfs) / MIB,
        "link_xet_client_cpu_s": [round(u.client_cpu_s, 3) for u in xet],
        "link_lfs_client_cpu_s": [round(u.client_cpu_s, 3) for u in lfs],
        "link_xet_server_cpu_s": [round(u.server_cpu_s, 3) for u in xet],
        "link_lfs_server_cpu_s": [round(u.server_cpu_s, 3) for u in lfs],
        "link_verified": all(u.verified for u in [*xet, *lfs, reupload]),
        "link_uploads_verified": len([*xet, *lfs, reupload]),
        "link_foreign_cores": [u.foreign for u in [*xet, *lfs, reupload]],
        "link_retried": retried,
    })


def print_link_table(r: dict) -> None:
    runs = lambda xs: ", ".join(f"{x:.2f}s" for x in xs)  # noqa: E731
    floor = r["link_wire_floor_s"]
    mb = r["file_bytes"] / 1e6
    print_table(f"{r['title']}, over a shaped {r['link_mbit']} Mbit/s link", ["", "value", "runs / detail"], [
        ["wire-time floor: file bytes * 8 / link rate (info)", f"{floor:.2f}s",
         f"{r['file_bytes']:,} bytes at {r['link_mbit']} Mbit/s"],
        ["Xet upload, median", f"{r['link_xet_s']:.2f}s",
         f"{runs(r['link_xet_runs_s'])}; {r['link_xet_s'] / floor:.2f}x the floor"],
        ["LFS upload, median", f"{r['link_lfs_s']:.2f}s",
         f"{runs(r['link_lfs_runs_s'])}; {r['link_lfs_s'] / floor:.2f}x the floor"],
        ["ratio Xet / LFS", f"{r['link_ratio']:.2f}x", f"loopback {r['ratio']:.2f}x (the goal is judged there)"],
        ["1%-changed re-upload", f"{r['link_reupload_s']:.2f}s", f"first Xet upload {r['link_first_xet_s']:.2f}s"],
        ["ratio first / re-upload", f"{r['link_reupload_ratio']:.2f}x", f"loopback {r['reupload_ratio']:.2f}x"],
        ["bytes up through the link: Xet, LFS", "",
         f"{', '.join(f'{b:,}' for b in r['link_xet_wire_up_bytes'])}; "
         f"{', '.join(f'{b:,}' for b in r['link_lfs_wire_up_bytes'])}"],
        ["bytes up through the link: re-upload", f"{r['link_reupload_wire_up_bytes']:,}",
         f"xorb bytes received {r['link_reupload_received_bytes']:,}"],
        ["server peak RSS, Xet (re-upload included) / LFS", f"{r['link_peak_rss_xet_mib']:,.0f} MiB",
         f"{r['link_peak_rss_lfs_mib']:,.0f} MiB"],
        ["every upload byte-identical (GET /resolve sha256)", str(r["link_verified"]),
         f"{r['link_uploads_verified']} uploads"],
        ["throughput, Xet / LFS (MB/s)", f"{fmt(mb / r['link_xet_s'])} / {fmt(mb / r['link_lfs_s'])}",
         f"link {r['link_mbit'] / 8:,.1f} MB/s"],
    ])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    add_diagnosis_flags(parser, "profile", "profile one extra Xet upload and re-upload with py-spy")
    parser.add_argument("--no-warm-memory", dest="warm", action="store_false",
                        help="do not hand pre-touched memory to the timed runs (see _common.WarmMemory)")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--link-mbit", type=int, default=None, metavar="N",
                        help="also run the rounds over the server's port shaped to N Mbit/s each way "
                             "(tc htb on lo; needs root and tc, skipped with a message otherwise)")
    args = parser.parse_args(argv)
    if args.link_mbit is not None and args.link_mbit <= 0:
        parser.error("--link-mbit must be a positive number of Mbit/s")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # a `timeout` unwinds like Ctrl-C: finally blocks run
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args.size_mib, args.rounds, args.profile, args.keep, args.warm, args.link_mbit)
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
