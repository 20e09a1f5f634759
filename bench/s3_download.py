"""Download from an S3-compatible store: `GET /resolve` → 302 → presigned GET, vs the presigned GET alone.

A random file (default 1 GiB) is pushed into a private repo of a releasehub whose blobs live in a
real SeaweedFS S3 server (tests/objectstore.py, loopback). Then, in alternating rounds:

- through the redirect: `curl -L -H "Authorization: Bearer T" /alice/dl/resolve/main/model.bin`
  (curl sends the token to the first host:port only, checked on one verbose transfer);
- direct: the presigned URL itself (a fresh `Location` of a GET without following), so the
  object store serves the same object to the same client, minus releasehub's hop;
- proxied: a second releasehub on the same data and bucket with `RELEASEHUB_STORAGE_PROXY=1`,
  which streams the bytes itself (for the CPU comparison; its throughput is listed for information).

Throughput is bytes / curl's `time_total` (the redirect's hop included). The CPU of every server's
process group (/proc/PID/stat utime+stime before and after) is recorded per download. The 302's own
latency: sequential requests on one keep-alive connection (http.client) in alternating blocks,
the GET without following (the 302) and a HEAD of the same file (whatever it answers: since
b5cef5b a HEAD answers 200 from the database and only GET is redirected), against a bare FastAPI
route served like releasehub (bench/bare_app.py) and releasehub's HEAD of a small non-LFS file of
the same repo (answered from the database, no presigning): p50 and p99.

    .venv/bin/python bench/s3_download.py [--size-mib 1024] [--runs 9] [--latency-requests 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import (  # noqa: E402
    bench_tmpdir, code_fingerprint, console, curl_fetch, curl_hops, ensure_tool, fmt, group_pids,
    RetryBudget, make_random_file, median, percentile, print_table, process_cpu_s, releasehub_server_env,
    request_latencies, sha256_file, start_bare_app, stop_group, wait_for_quiet, wait_http_ok,
)

GOAL = 0.95          # throughput through the 302 / direct presigned GET
GOAL_ADDED_MS = 2.0  # p50 of the 302 answer minus p50 of a bare route
MAX_RETRIES = 4      # runs repeated for other work on the machine, over the whole benchmark
LAT_GET = "302 GET (not followed), keep-alive"
LAT_HEAD = "HEAD of the same LFS file, keep-alive"
LAT_SMALL = "releasehub HEAD of a small file (200 from the database, no presigning), keep-alive"
LAT_BARE = "bare FastAPI route HEAD, keep-alive"
LAT_GET_FRESH = "302 GET (not followed), new connection each"
LAT_BARE_FRESH = "bare FastAPI route GET, new connection each"
HUB_HEADERS = ("x-repo-commit", "x-linked-etag", "x-linked-size", "etag", "location")


def _check_redirect(url: str, auth: str, size: int, endpoint: str, log: Path) -> dict:
    """One verbose `curl -L` transfer: the 302 carries the Hub's headers and a Location on the object
    store; the token goes to releasehub only; the second hop answers 200 with the whole file."""
    got = curl_fetch(url, [auth], follow=True, verbose_log=log)
    hops = curl_hops(log)
    if len(hops) != 2 or hops[0]["status"] != 302 or hops[1]["status"] != 200:
        raise RuntimeError(f"curl -L hops: {[h['status'] for h in hops]} (want [302, 200])\n{log.read_text()[-3000:]}")
    first, second = hops
    missing = [h for h in HUB_HEADERS if h not in first["response"]]
    if missing:
        raise RuntimeError(f"the 302 lacks {missing}: {first['response']}")
    location = first["response"]["location"][0]
    store = urlsplit(endpoint)
    if urlsplit(location).netloc != store.netloc:
        raise RuntimeError(f"Location {location} is not on the object store {endpoint}")
    token_first = any(line.lower().startswith("authorization:") for line in first["request"])
    token_second = any(line.lower().startswith("authorization:") for line in second["request"])
    if not token_first or token_second:
        raise RuntimeError(f"Authorization on hop 1: {token_first} (want True), hop 2: {token_second} (want False)")
    if int(got["size_download"]) != size or int(first["response"]["x-linked-size"][0]) != size:
        raise RuntimeError(f"downloaded {got['size_download']} bytes, X-Linked-Size "
                           f"{first['response']['x-linked-size']}, want {size}")
    return {
        "token_on_first_hop": token_first, "token_on_second_hop": token_second,
        "headers_302": {h: first["response"][h][0] for h in HUB_HEADERS if h != "location"},
        "cache_control_302": (first["response"].get("cache-control") or [""])[0],
        "location_host": urlsplit(location).netloc,
        "location_query_keys": sorted(p.split("=", 1)[0] for p in urlsplit(location).query.split("&")),
    }


def _sha256_through(url: str, headers: list[str]) -> str:
    """sha256 of the bytes `curl -L` receives (streamed, never on disk)."""
    cmd = ["curl", "-s", "-f", "-L", "--max-time", "600"]
    for header in headers:
        cmd += ["-H", header]
    digest = hashlib.sha256()
    with subprocess.Popen([*cmd, url], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(8 * 1024 * 1024):
            digest.update(block)
        proc.wait(timeout=60)
    return digest.hexdigest()


def _location(url: str, auth: str) -> str:
    """A fresh presigned URL: the Location of a GET that is not followed."""
    import http.client

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path, headers={"Authorization": auth.split(": ", 1)[1]})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 302:
            raise RuntimeError(f"GET {url} without following answered {resp.status}, want 302")
        return resp.getheader("Location") or ""
    finally:
        conn.close()


def run(size_mib: int = 1024, runs: int = 9, latency_requests: int = 1000, keep: bool = False) -> dict:
    from objectstore import start_object_store

    ensure_tool("curl", "curl")
    code_before = code_fingerprint()
    tmp = bench_tmpdir("s3dl")
    store = bare_proc = None
    try:
        console.print("starting SeaweedFS (weed server -s3)...")
        store = start_object_store(tmp / "s3")
        env = store.env()
        src = tmp / "src"
        model = make_random_file(src / "model.bin", size_mib)
        (src / "config.json").write_text('{"model_type": "bench"}\n')
        sha = sha256_file(model)
        size = model.stat().st_size
        bare_proc, bare_port = start_bare_app(tmp)
        with releasehub_server_env(tmp / "data", env) as hub:
            pushed_s = hub.push(src, "dl", private=True)
            model.unlink()
            bucket, _, prefix = env["RELEASEHUB_STORAGE_URL"].removeprefix("s3://").partition("/")
            key = f"{prefix.strip('/') + '/' if prefix.strip('/') else ''}blobs/{sha[:2]}/{sha[2:4]}/{sha}"
            head = store.client().head_object(Bucket=bucket, Key=key)
            if int(head["ContentLength"]) != size:
                raise RuntimeError(f"object {key} has {head['ContentLength']} bytes, want {size}")
            proxy_env = dict(env, RELEASEHUB_STORAGE_PROXY="1")
            with releasehub_server_env(hub.data_dir, proxy_env, token=hub.token, log_name="serve-proxy.log") as proxy:
                wait_http_ok(f"http://127.0.0.1:{bare_port}/api/health", timeout=60, proc=bare_proc)
                auth = f"Authorization: Bearer {hub.token}"
                hub_url = f"{hub.url}/alice/dl/resolve/main/model.bin"
                proxy_url = f"{proxy.url}/alice/dl/resolve/main/model.bin"
                small_url = f"{hub.url}/alice/dl/resolve/main/config.json"
                bare_url = f"http://127.0.0.1:{bare_port}/alice/dl/resolve/main/model.bin"

                anon = curl_fetch(hub_url)["http_code"]
                if anon != 401:
                    raise RuntimeError(f"private repo: GET without token answered {anon:.0f}, want 401")
                checks = _check_redirect(hub_url, auth, size, store.endpoint, tmp / "curl-v.txt")
                checks["sha256_through_redirect_ok"] = _sha256_through(hub_url, [auth]) == sha
                if not checks["sha256_through_redirect_ok"]:
                    raise RuntimeError("the bytes through the redirect do not hash to the pushed file's sha256")
                got = curl_fetch(proxy_url, [auth])  # warm-up of the proxied path, checked
                if got["http_code"] != 200 or int(got["size_download"]) != size:
                    raise RuntimeError(f"proxied download: HTTP {got['http_code']:.0f}, {got['size_download']:.0f} bytes")
                curl_fetch(_location(hub_url, auth))  # warm-up of the direct path

                quiet = wait_for_quiet(max_wait_s=60)
                pids = {"releasehub": group_pids(hub.proc), "proxy": group_pids(proxy.proc),
                        "store": group_pids(store.process)}
                all_pids = [p for ps in pids.values() for p in ps] + group_pids(bare_proc)
                speeds: dict[str, list[float]] = {"redirect": [], "direct": [], "proxy": []}
                ttfb: dict[str, list[float]] = {"redirect": [], "direct": [], "proxy": []}
                redirect_ms: list[float] = []
                cpu: dict[str, dict[str, list[float]]] = {k: {"releasehub": [], "store": []} for k in speeds}
                budget = RetryBudget(all_pids, max_retries=MAX_RETRIES)
                for _ in range(runs):
                    location = _location(hub_url, auth)
                    for name, url, headers, follow, server in (
                            ("redirect", hub_url, [auth], True, "releasehub"),
                            ("direct", location, [], False, "releasehub"),
                            ("proxy", proxy_url, [auth], False, "proxy")):
                        def once(url=url, headers=headers, follow=follow, server=server):
                            before = (process_cpu_s(pids[server]), process_cpu_s(pids["store"]))
                            res = curl_fetch(url, headers, follow=follow)
                            return res, (process_cpu_s(pids[server]) - before[0],
                                         process_cpu_s(pids["store"]) - before[1])

                        res, (used, used_store) = budget(once)
                        if res["http_code"] != 200 or int(res["size_download"]) != size:
                            raise RuntimeError(f"{name} download gave HTTP {res['http_code']:.0f}, "
                                               f"{res['size_download']:.0f} bytes (want {size})")
                        if follow and res["num_redirects"] != 1:
                            raise RuntimeError(f"{name}: {res['num_redirects']:.0f} redirects, want 1")
                        speeds[name].append(size / res["time_total"] / 1e6)
                        ttfb[name].append(res["time_starttransfer"] * 1000)
                        if follow:
                            redirect_ms.append(res["time_redirect"] * 1000)
                        cpu[name]["releasehub"].append(used)
                        cpu[name]["store"].append(used_store)

                # The 302's own latency, sequential on one keep-alive connection, alternating blocks.
                token_header = {"Authorization": f"Bearer {hub.token}"}
                head_status = int(curl_fetch(hub_url, [auth], extra=["-I"])["http_code"])
                if head_status not in (200, 302):
                    raise RuntimeError(f"HEAD of the LFS file answered {head_status}")
                targets = {
                    LAT_GET: (hub_url, "GET", token_header, 302, False),
                    LAT_HEAD: (hub_url, "HEAD", token_header, head_status, False),
                    LAT_SMALL: (small_url, "HEAD", token_header, 200, False),
                    LAT_BARE: (bare_url, "HEAD", token_header, 200, False),
                    LAT_GET_FRESH: (hub_url, "GET", token_header, 302, True),
                    LAT_BARE_FRESH: (bare_url, "GET", token_header, 200, True),
                }
                for url, method, hdrs, want, fresh in targets.values():  # warm-up, untimed
                    request_latencies(url, method, hdrs, 50, want, fresh)
                blocks = 5
                lat: dict[str, list[float]] = {name: [] for name in targets}
                lat_budget = RetryBudget(all_pids)
                cpu_302 = 0.0  # releasehub's CPU over the keep-alive 302 GET blocks
                for _ in range(blocks):
                    for name, (url, method, hdrs, want, fresh) in targets.items():
                        n = max(1, latency_requests // blocks)
                        before = process_cpu_s(pids["releasehub"])
                        lat[name].extend(lat_budget(lambda: request_latencies(url, method, hdrs, n, want, fresh),
                                                    retry=False))
                        if name == LAT_GET:
                            cpu_302 += process_cpu_s(pids["releasehub"]) - before
    finally:
        stop_group(bare_proc)
        if store is not None:
            store.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    ms = {name: {"p50": 1000 * percentile(v, 50), "p99": 1000 * percentile(v, 99), "n": len(v)}
          for name, v in lat.items()}
    added = ms[LAT_GET]["p50"] - ms[LAT_BARE]["p50"]
    added_head = ms[LAT_HEAD]["p50"] - ms[LAT_BARE]["p50"]
    added_fresh = ms[LAT_GET_FRESH]["p50"] - ms[LAT_BARE_FRESH]["p50"]
    redirect_mbps, direct_mbps, proxy_mbps = (median(speeds[k]) for k in ("redirect", "direct", "proxy"))
    ratio = redirect_mbps / direct_mbps
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "s3_download",
        "title": f"Download of a {size_mib} MiB file from SeaweedFS S3: through the 302 vs the presigned GET alone",
        "unit": "MB/s",
        "releasehub": redirect_mbps,
        "reference": direct_mbps,
        "reference_name": "direct presigned GET of the same object",
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL,
        "added_p50_ms": added,
        "added_head_p50_ms": added_head,
        "head_status": head_status,
        "added_fresh_p50_ms": added_fresh,
        "goal_added_ms": GOAL_ADDED_MS,
        "added_met": added < GOAL_ADDED_MS,
        "latency_ms": ms,
        "latency_requests": latency_requests,
        "latency_foreign_cores": lat_budget.foreign,
        "cpu_per_302_ms": 1000 * cpu_302 / max(1, len(lat[LAT_GET])),
        "proxy_mbps": proxy_mbps,
        # Rounds alternate, so each round's pair shared the machine's state: the median of the
        # per-round ratios, for information next to the ratio of the medians.
        "paired_ratio": median([a / b for a, b in zip(speeds["redirect"], speeds["direct"])]),
        "runs": runs,
        "size_mib": size_mib,
        "push_s": pushed_s,
        "cpu_busy_before": quiet,
        "foreign_cores": budget.foreign,
        "retried": budget.retried,
        "speeds": speeds,
        "ttfb_ms": ttfb,
        "time_redirect_ms": redirect_ms,
        "cpu_s": cpu,
        "checks": checks,
    }
    med = lambda xs: median(xs) if xs else 0.0  # noqa: E731
    print_table(result["title"], ["", "median", "runs"], [
        ["through the 302 (curl -L), MB/s", fmt(redirect_mbps), ", ".join(fmt(v, 0) for v in speeds["redirect"])],
        ["direct presigned GET, MB/s", fmt(direct_mbps), ", ".join(fmt(v, 0) for v in speeds["direct"])],
        ["ratio", f"{ratio:.2f}x", f"goal >= {GOAL}x: {'met' if result['met'] else 'NOT met'}"],
        ["proxied by releasehub (STORAGE_PROXY=1), MB/s", fmt(proxy_mbps), ", ".join(fmt(v, 0) for v in speeds["proxy"])],
        ["curl's time_redirect (the 302 hop), ms", f"{med(redirect_ms):.2f}", ", ".join(f"{v:.2f}" for v in redirect_ms)],
        ["time to first byte, ms: 302 / direct / proxy",
         f"{med(ttfb['redirect']):.2f} / {med(ttfb['direct']):.2f} / {med(ttfb['proxy']):.2f}", ""],
        ["releasehub CPU ms per 302 answer (latency blocks)", f"{result['cpu_per_302_ms']:.3f}", ""],
        ["releasehub CPU s per download: 302 / proxy",
         f"{med(cpu['redirect']['releasehub']):.3f} / {med(cpu['proxy']['releasehub']):.2f}", ""],
        ["object store CPU s per download: 302 / direct / proxy",
         f"{med(cpu['redirect']['store']):.2f} / {med(cpu['direct']['store']):.2f} / {med(cpu['proxy']['store']):.2f}", ""],
    ])
    print_table(f"Latency of single requests (sequential, keep-alive, {latency_requests} each)",
                ["", "p50 ms", "p99 ms"], [[k, f"{v['p50']:.3f}", f"{v['p99']:.3f}"] for k, v in ms.items()]
                + [["added by the 302 GET over the bare route (p50)", f"{added:.3f}",
                    f"goal < {GOAL_ADDED_MS} ms: {'met' if result['added_met'] else 'NOT met'}"]])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    args = parser.parse_args(argv)
    # A SIGTERM (a `timeout`) unwinds like Ctrl-C, so that `finally` stops the servers' process groups.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args.size_mib, args.runs, args.latency_requests, args.keep)


if __name__ == "__main__":
    main()
