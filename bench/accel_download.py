"""Download behind the nginx front: nginx → releasehub decides → nginx sends the file (X-Accel-Redirect),
vs nginx alone serving the same blob file.

A random file (default 1 GiB) is pushed into a private repo of a releasehub with local blobs and
`RELEASEHUB_ACCEL_REDIRECT_PREFIX=/_blobs/`. One nginx (1 worker, sendfile on) runs the config of
bench/nginx_accel.conf.template: a front server that proxies to releasehub and has the `internal`
location /_blobs/ aliasing the data dir's blobs/, and a reference server whose root is the same
blob directory. curl downloads through the front (with the Bearer token) and from the reference
(the blob's path), alternating; the median of each is reported, with the CPU time of nginx and
releasehub per download (/proc/PID/stat of their process groups).

Before measuring, the headers are checked: through the front, a GET (200 and a Range 206) carries
X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size, Content-Disposition, Cache-Control and
Content-Type with the values releasehub gives on HEAD, each once, and Content-Length / Content-Range
of the file; X-Accel-Redirect never reaches the client; /_blobs/ asked directly is 404; without a
token the private file is 401; the bytes hash to the pushed file's sha256. Every header that
arrives more than once is reported.

    .venv/bin/python bench/accel_download.py [--size-mib 1024] [--runs 25]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RetryBudget, bench_tmpdir, code_fingerprint, console, curl_fetch, curl_hops, ensure_tool, fmt, free_port,
    group_pids, make_random_file, median, nginx_server, percentile, print_table, process_cpu_s, releasehub_server_env,
    request_latencies, sha256_file, stop_group, wait_for_quiet, wait_http_ok, warm_page_cache,
)

GOAL = 0.95
MAX_RETRIES = 4
SMALL_REQUESTS = 500
HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx_accel.conf.template"
# The Hub's headers a client reads from a download, compared with releasehub's own HEAD answer.
HUB_HEADERS = ("x-repo-commit", "etag", "x-linked-etag", "x-linked-size", "content-disposition",
               "cache-control", "content-type")


def nginx_config(releasehub_port: int, front_port: int, reference_port: int, blobs: Path) -> str:
    text = TEMPLATE.read_text()
    for key, value in (("RELEASEHUB_PORT", releasehub_port), ("FRONT_PORT", front_port),
                       ("REFERENCE_PORT", reference_port), ("BLOBS", blobs)):
        text = text.replace(f"@@{key}@@", str(value))
    return "\n".join("    " + line if line else "" for line in text.splitlines()) + "\n"


def _headers_of(url: str, args: list[str], log: Path) -> dict:
    """Status and response headers (name → all values) of one curl request."""
    curl_fetch(url, extra=args, verbose_log=log)
    hops = curl_hops(log)
    if len(hops) != 1:
        raise RuntimeError(f"{url}: {len(hops)} hops, want 1\n{log.read_text()[-2000:]}")
    return hops[0]


def check_headers(front_url: str, auth: str, size: int, tmp: Path) -> dict:
    head = _headers_of(front_url, ["-I", "-H", auth], tmp / "curl-head.txt")
    get = _headers_of(front_url, ["-H", auth], tmp / "curl-get.txt")
    ranged = _headers_of(front_url, ["-H", auth, "-r", "100-1123"], tmp / "curl-range.txt")
    if head["status"] != 200 or get["status"] != 200 or ranged["status"] != 206:
        raise RuntimeError(f"through the front: HEAD {head['status']}, GET {get['status']}, "
                           f"Range GET {ranged['status']} (want 200, 200, 206)")
    problems: list[str] = []
    for what, answer in (("GET", get), ("Range GET", ranged)):
        for name in HUB_HEADERS:
            want = head["response"].get(name)
            got = answer["response"].get(name)
            if not want:
                problems.append(f"releasehub's HEAD has no {name}")
            elif got != want[:1]:
                problems.append(f"{what}: {name} is {got}, releasehub says {want[0]!r}")
        if "x-accel-redirect" in answer["response"]:
            problems.append(f"{what}: X-Accel-Redirect reached the client")
    if get["response"].get("content-length") != [str(size)]:
        problems.append(f"GET: Content-Length {get['response'].get('content-length')}, want {size}")
    if ranged["response"].get("content-range") != [f"bytes 100-1123/{size}"] or \
            ranged["response"].get("content-length") != ["1024"]:
        problems.append(f"Range GET: Content-Range {ranged['response'].get('content-range')}, "
                        f"Content-Length {ranged['response'].get('content-length')}")
    duplicated = {what: {k: v for k, v in answer["response"].items() if len(v) > 1}
                  for what, answer in (("HEAD", head), ("GET", get), ("Range GET", ranged))}
    only_head = sorted(set(head["response"]) - set(get["response"]) - {"content-length"})
    only_get = sorted(set(get["response"]) - set(head["response"]))
    return {"problems": problems, "duplicated": {k: v for k, v in duplicated.items() if v},
            "headers_get": get["response"], "headers_head": head["response"],
            "headers_range": ranged["response"], "only_on_head": only_head, "only_on_get": only_get}


def _sha256_of(url: str, headers: list[str]) -> str:
    cmd = ["curl", "-s", "-f", "--max-time", "600"]
    for header in headers:
        cmd += ["-H", header]
    digest = hashlib.sha256()
    with subprocess.Popen([*cmd, url], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(8 * 1024 * 1024):
            digest.update(block)
        proc.wait(timeout=60)
    return digest.hexdigest()


def run(size_mib: int = 1024, runs: int = 25, keep: bool = False) -> dict:
    ensure_tool("curl", "curl")
    ensure_tool("nginx", "nginx")
    code_before = code_fingerprint()
    tmp = bench_tmpdir("accel")
    nginx_proc = None
    try:
        src = tmp / "src"
        model = make_random_file(src / "model.bin", size_mib)
        (src / "config.json").write_text('{"model_type": "bench"}\n')
        sha = sha256_file(model)
        size = model.stat().st_size
        env = {"RELEASEHUB_ACCEL_REDIRECT_PREFIX": "/_blobs/"}
        with releasehub_server_env(tmp / "data", env) as hub:
            hub.push(src, "dl", private=True)
            model.unlink()
            blob = hub.blob_path(sha)
            if not blob.is_file() or blob.stat().st_size != size:
                raise RuntimeError(f"blob {blob} not found after push")
            front_port, reference_port = free_port(), free_port()
            config = nginx_config(hub.port, front_port, reference_port, hub.data_dir / "blobs")
            nginx_proc = nginx_server(tmp / "nginx", config, tmp / "nginx-stdout.log", worker_connections=256)
            rel = blob.relative_to(hub.data_dir / "blobs").as_posix()
            reference_url = f"http://127.0.0.1:{reference_port}/{rel}"
            front_url = f"http://127.0.0.1:{front_port}/alice/dl/resolve/main/model.bin"
            wait_http_ok(reference_url, timeout=30, proc=nginx_proc)
            auth = f"Authorization: Bearer {hub.token}"

            checks = check_headers(front_url, auth, size, tmp)
            checks["anonymous_status"] = int(curl_fetch(front_url)["http_code"])
            checks["internal_direct_status"] = int(curl_fetch(f"http://127.0.0.1:{front_port}/_blobs/{rel}")["http_code"])
            if checks["anonymous_status"] != 401:
                checks["problems"].append(f"without a token the private file answered {checks['anonymous_status']}")
            if checks["internal_direct_status"] != 404:
                checks["problems"].append(f"/_blobs/ asked directly answered {checks['internal_direct_status']}")
            checks["sha256_ok"] = _sha256_of(front_url, [auth]) == sha
            if not checks["sha256_ok"]:
                raise RuntimeError("the bytes through the front do not hash to the pushed file's sha256")
            if checks["problems"]:
                console.print(f"[red]header problems through the front: {checks['problems']}[/red]")
            if checks["duplicated"]:
                console.print(f"[yellow]headers sent more than once: {checks['duplicated']}[/yellow]")

            warm_page_cache(blob)
            for url, headers in ((front_url, [auth]), (reference_url, [])):  # warm-up, untimed
                got = curl_fetch(url, headers)
                if got["http_code"] != 200 or int(got["size_download"]) != size:
                    raise RuntimeError(f"warm-up download of {url}: HTTP {got['http_code']:.0f}, {got['size_download']:.0f} bytes")

            quiet = wait_for_quiet(max_wait_s=60)
            hub_pids, nginx_pids = group_pids(hub.proc), group_pids(nginx_proc)
            budget = RetryBudget(hub_pids + nginx_pids, max_retries=MAX_RETRIES)
            speeds: dict[str, list[float]] = {"front": [], "nginx": []}
            ttfb: dict[str, list[float]] = {"front": [], "nginx": []}
            cpu: dict[str, dict[str, list[float]]] = {k: {"nginx": [], "releasehub": []} for k in speeds}
            for _ in range(runs):
                for name, url, headers in (("front", front_url, [auth]), ("nginx", reference_url, [])):
                    def once(url=url, headers=headers):
                        before = (process_cpu_s(nginx_pids), process_cpu_s(hub_pids))
                        res = curl_fetch(url, headers)
                        return res, (process_cpu_s(nginx_pids) - before[0], process_cpu_s(hub_pids) - before[1])

                    res, (used_nginx, used_hub) = budget(once)
                    if res["http_code"] != 200 or int(res["size_download"]) != size:
                        raise RuntimeError(f"{name} download gave HTTP {res['http_code']:.0f}, "
                                           f"{res['size_download']:.0f} bytes (want {size})")
                    speeds[name].append(size / res["time_total"] / 1e6)
                    ttfb[name].append(res["time_starttransfer"] * 1000)
                    cpu[name]["nginx"].append(used_nginx)
                    cpu[name]["releasehub"].append(used_hub)
            # Per request: sequential one-byte Range GETs on one keep-alive connection, through the front
            # and from nginx alone, with the CPU of each server over them (finer than a download's ticks).
            small: dict[str, dict] = {}
            for name, url, hdrs in (("front", front_url, {"Authorization": f"Bearer {hub.token}"}),
                                    ("nginx", reference_url, {})):
                hdrs = dict(hdrs, Range="bytes=0-0")
                request_latencies(url, "GET", hdrs, 50, 206)  # warm-up
                before = (process_cpu_s(nginx_pids), process_cpu_s(hub_pids))
                times = budget(lambda url=url, hdrs=hdrs: request_latencies(url, "GET", hdrs, SMALL_REQUESTS, 206),
                               retry=False)
                small[name] = {"p50_ms": 1000 * percentile(times, 50), "p99_ms": 1000 * percentile(times, 99),
                               "nginx_cpu_ms": 1000 * (process_cpu_s(nginx_pids) - before[0]) / len(times),
                               "releasehub_cpu_ms": 1000 * (process_cpu_s(hub_pids) - before[1]) / len(times),
                               "n": len(times)}
            nginx_version = subprocess.run([ensure_tool("nginx", "nginx"), "-v"], capture_output=True, text=True,
                                           timeout=10).stderr.strip()
    finally:
        stop_group(nginx_proc)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    front, alone = median(speeds["front"]), median(speeds["nginx"])
    ratio = front / alone
    headers_ok = not checks["problems"]
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "accel_download",
        "title": f"Download of a {size_mib} MiB file behind nginx with X-Accel-Redirect (curl, page cache warm)",
        "unit": "MB/s",
        "releasehub": front,
        "reference": alone,
        "reference_name": "nginx alone serving the same blob file",
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL and headers_ok,
        "ratio_met": ratio >= GOAL,
        "paired_ratio": median([a / b for a, b in zip(speeds["front"], speeds["nginx"])]),
        "headers_ok": headers_ok,
        "runs": runs,
        "size_mib": size_mib,
        "cpu_busy_before": quiet,
        "foreign_cores": budget.foreign,
        "retried": budget.retried,
        "speeds": speeds,
        "releasehub_runs": speeds["front"],
        "reference_runs": speeds["nginx"],
        "ttfb_ms": ttfb,
        "per_request": small,
        "cpu_s": cpu,
        "checks": checks,
        "nginx_version": nginx_version,
        "config": TEMPLATE.name,
    }
    print_table(result["title"], ["", "median", "runs"], [
        ["nginx → releasehub → nginx sends the file, MB/s", fmt(front), ", ".join(fmt(v, 0) for v in speeds["front"])],
        ["nginx alone, MB/s", fmt(alone), ", ".join(fmt(v, 0) for v in speeds["nginx"])],
        ["ratio", f"{ratio:.2f}x", f"goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'}"],
        ["time to first byte, ms: front / alone", f"{median(ttfb['front']):.2f} / {median(ttfb['nginx']):.2f}", ""],
        ["CPU s per download through the front: nginx / releasehub",
         f"{median(cpu['front']['nginx']):.3f} / {median(cpu['front']['releasehub']):.3f}", ""],
        ["CPU s per download, nginx alone", f"{median(cpu['nginx']['nginx']):.3f}", ""],
        ["one-byte Range GET p50, ms: front / alone", f"{small['front']['p50_ms']:.3f} / {small['nginx']['p50_ms']:.3f}", ""],
        ["CPU ms per one-byte GET through the front: nginx / releasehub",
         f"{small['front']['nginx_cpu_ms']:.3f} / {small['front']['releasehub_cpu_ms']:.3f}", ""],
        ["Hub headers intact through the front", "yes" if headers_ok else "NO", "; ".join(checks["problems"])],
        ["headers sent twice", ", ".join(f"{w}: {', '.join(d)}" for w, d in checks["duplicated"].items()) or "none", ""],
    ])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args.size_mib, args.runs, args.keep)


if __name__ == "__main__":
    main()
