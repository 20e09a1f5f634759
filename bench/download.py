"""Download throughput: releasehub `/resolve/main/FILE` vs nginx serving the same blob file.

A random file (default 1 GiB) is pushed into a private repo; then curl downloads it N times from
releasehub (with the Bearer token) and N times from an nginx (sendfile on, 1 worker) whose root
is the releasehub blob directory, so both read the very same file from the page cache. Runs
alternate between the two servers; the median of each is reported, with the CPU time each
server spent per download. When the ratio misses the goal (or with --trace) one extra download
from each server runs under `strace -f -c` to show how the bytes are sent.

    .venv/bin/python bench/download.py [--size-mib 1024] [--runs 7] [--trace]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    process_cpu_s,
    add_diagnosis_flags,
    code_fingerprint, measured,
    bench_tmpdir, console, curl_download, ensure_tool, fmt, free_port, group_pids, make_random_file, median, nginx_server,
    print_table, releasehub_server, sha256_file, stop_group, wait_for_quiet, wait_http_ok,
    warm_page_cache,
)

GOAL = 0.9

def start_nginx(prefix: Path, root: Path, port: int):
    """nginx serving the blob files from `root` (sendfile on)."""
    http = (f"    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n    keepalive_timeout 30;\n"
            f"    default_type application/octet-stream;\n"
            f"    server {{\n        listen 127.0.0.1:{port};\n        root {root};\n        location / {{ }}\n    }}\n")
    return nginx_server(prefix, http, prefix / "stdout.log", worker_connections=64)


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def syscall_counts(pids: list[int], url: str, headers, out: Path) -> dict[str, int]:
    """`strace -f -c` of the server's processes during one extra, untimed download."""
    strace = ensure_tool("strace", "strace")
    cmd = [strace, "-f", "-c", "-o", str(out)]
    for pid in pids:
        cmd += ["-p", str(pid)]
    tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # let strace attach
        curl_download(url, headers)
        time.sleep(0.5)
    finally:
        tracer.terminate()
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(timeout=10)
    counts: dict[str, int] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            match = _STRACE_ROW.match(line)
            if match and match.group(2) != "total":
                counts[match.group(2)] = int(match.group(1))
    keep = ("sendfile", "splice", "read", "pread64", "readv", "write", "writev", "futex", "epoll_wait", "mmap")
    return {k: counts.get(k, 0) for k in keep}


def run(size_mib: int = 1024, runs: int = 7, trace: bool | None = None, keep: bool = False) -> dict:
    ensure_tool("curl", "curl")
    code_before = code_fingerprint()
    tmp = bench_tmpdir("download")
    nginx_proc = None
    try:
        src = tmp / "src"
        model = make_random_file(src / "model.bin", size_mib)
        (src / "config.json").write_text('{"model_type": "bench"}\n')
        sha = sha256_file(model)
        size = model.stat().st_size
        with releasehub_server(tmp / "data") as hub:
            hub.push(src, "dl", private=True)
            model.unlink()  # only the blob copy is needed from here on
            blob = hub.blob_path(sha)
            if not blob.is_file() or blob.stat().st_size != size:
                raise RuntimeError(f"blob {blob} not found after push")

            nginx_port = free_port()
            nginx_proc = start_nginx(tmp / "nginx", hub.data_dir / "blobs", nginx_port)
            rel = blob.relative_to(hub.data_dir / "blobs").as_posix()
            nginx_url = f"http://127.0.0.1:{nginx_port}/{rel}"
            wait_http_ok(nginx_url, timeout=30, proc=nginx_proc)  # returns after the headers

            hub_url = f"{hub.url}/alice/dl/resolve/main/model.bin"
            auth = [f"Authorization: Bearer {hub.token}"]

            warm_page_cache(blob)
            # One untimed download from each, to warm connections, caches and code paths.
            for url, headers in ((hub_url, auth), (nginx_url, ())):
                _, got, code = curl_download(url, headers)
                if code != 200 or got != size:
                    raise RuntimeError(f"warm-up download of {url} gave HTTP {code}, {got} bytes")

            quiet = wait_for_quiet()
            hub_pids, nginx_pids = group_pids(hub.proc), group_pids(nginx_proc)
            hub_speeds: list[float] = []
            nginx_speeds: list[float] = []
            hub_cpu: list[float] = []
            nginx_cpu: list[float] = []
            foreign: list[float] = []
            retried = 0
            for _ in range(runs):
                for url, headers, sink, pids, cpu in ((hub_url, auth, hub_speeds, hub_pids, hub_cpu),
                                                      (nginx_url, (), nginx_speeds, nginx_pids, nginx_cpu)):
                    def once(url=url, headers=headers, pids=pids):
                        cpu0 = process_cpu_s(pids)
                        got = curl_download(url, headers)
                        return got, process_cpu_s(pids) - cpu0

                    sample = measured(once, hub_pids + nginx_pids)
                    (speed, got, code), used = sample.value
                    foreign.append(sample.foreign)
                    retried += sample.tries - 1
                    cpu.append(used)
                    if code != 200 or got != size:
                        raise RuntimeError(f"download of {url} gave HTTP {code}, {got} bytes (want {size})")
                    sink.append(speed / 1e6)
            syscalls = None
            if trace or (trace is None and median(hub_speeds) / median(nginx_speeds) < GOAL):
                console.print("[yellow]counting the servers' system calls during one extra download (strace)[/yellow]")
                syscalls = {
                    "releasehub": syscall_counts(hub_pids, hub_url, auth, tmp / "strace-releasehub.txt"),
                    "nginx": syscall_counts(nginx_pids, nginx_url, (), tmp / "strace-nginx.txt"),
                }
    finally:
        stop_group(nginx_proc)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    hub_mbps = median(hub_speeds)
    nginx_mbps = median(nginx_speeds)
    ratio = hub_mbps / nginx_mbps
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "download",
        "title": f"Download of a {size_mib} MiB file (curl, page cache warm)",
        "unit": "MB/s",
        "releasehub": hub_mbps,
        "reference": nginx_mbps,
        "reference_name": "nginx (sendfile on, 1 worker)",
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL,
        "runs": runs,
        "size_mib": size_mib,
        "cpu_busy_before": quiet,
        "releasehub_runs": hub_speeds,
        "reference_runs": nginx_speeds,
        "releasehub_cpu_s": hub_cpu,
        "reference_cpu_s": nginx_cpu,
        "syscalls": syscalls,
        "foreign_cores": foreign,
        "retried": retried,
    }
    print_table(result["title"], ["", "median MB/s", "runs MB/s"], [
        ["releasehub /resolve", fmt(hub_mbps), ", ".join(fmt(v, 0) for v in hub_speeds)],
        ["nginx sendfile", fmt(nginx_mbps), ", ".join(fmt(v, 0) for v in nginx_speeds)],
        ["ratio", f"{ratio:.2f}x", f"goal >= {GOAL}x: {'met' if result['met'] else 'NOT met'}"],
        ["server CPU s per download: releasehub", fmt(median(hub_cpu), 2), ", ".join(fmt(v, 2) for v in hub_cpu)],
        ["server CPU s per download: nginx", fmt(median(nginx_cpu), 2), ", ".join(fmt(v, 2) for v in nginx_cpu)],
    ])
    if syscalls:
        print_table("system calls of the server during one download (strace -f -c)", ["syscall", "releasehub", "nginx"],
                    [[k, syscalls["releasehub"][k], syscalls["nginx"][k]] for k in syscalls["releasehub"]])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=7)
    add_diagnosis_flags(parser, "trace", "count system calls with strace in one extra download")
    args = parser.parse_args(argv)
    return run(args.size_mib, args.runs, args.trace, args.keep)


if __name__ == "__main__":
    main()
