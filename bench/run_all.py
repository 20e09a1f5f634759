"""Run the three benchmarks and rewrite docs/benchmarks.md with the results of this run.

    .venv/bin/python bench/run_all.py [--size-mib 1024] [--only download head_rps upload]
                                      [--output docs/benchmarks.md] [--json results.json]

A benchmark that fails is reported as failed in the document (with its error) instead of
stopping the others. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import download  # noqa: E402
import head_rps  # noqa: E402
import upload  # noqa: E402
from _common import ROOT, console, machine_info  # noqa: E402

BENCHMARKS = ("download", "head_rps", "upload")


def _num(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def _runs(values: list[float], digits: int = 0) -> str:
    return ", ".join(f"{v:,.{digits}f}" for v in values)


def _load_line(res: dict) -> str:
    """How much other work shared the machine during the kept runs (see _common.ForeignLoad)."""
    text = f"Machine CPU busy before measuring: {res.get('cpu_busy_before', 0):.0%}."
    foreign = res.get("foreign_cores") or []
    if foreign:
        text += (f" Other work during the kept runs: median {sorted(foreign)[len(foreign) // 2]:.2f}, "
                 f"max {max(foreign):.2f} cores; runs repeated because other work used more than 0.2 "
                 f"cores: {res.get('retried', 0)}.")
    return text


def _result_table(res: dict) -> list[str]:
    unit = res["unit"]
    return [
        "| | value |",
        "|---|---|",
        f"| releasehub | {_num(res['releasehub'], unit)} |",
        f"| reference: {res['reference_name']} | {_num(res['reference'], unit)} |",
        f"| ratio releasehub / reference | **{res['ratio']:.2f}x** |",
        f"| goal | >= {res['goal']}x |",
        f"| met? | {'yes' if res['met'] else '**NO**'} |",
        "",
    ]


def _profile_tables(prof: dict, heading: str, with_inclusive: bool = True) -> list[str]:
    lines = [heading, ""]
    if prof.get("buckets"):
        lines += ["| where the samples fall | % of samples |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in prof["buckets"]]
        lines.append("")
    lines += ["| hottest functions, self time | % |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in prof["self"][:12]]
    lines.append("")
    if with_inclusive:
        lines += ["| hottest functions, inclusive (start-up scaffolding left out) | % |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in prof["inclusive"][:12]]
        lines.append("")
    return lines


def section_download(res: dict) -> list[str]:
    lines = [
        "## 1. Download: `GET /resolve/main/model.bin` vs nginx",
        "",
        "**What**: throughput of one large-file download, releasehub vs nginx serving the very same "
        "blob file from the releasehub data dir.",
        "",
        f"**How** (`bench/download.py`): a {res['size_mib']} MiB file of random bytes is pushed with "
        "`releasehub push` into a private repo. nginx 1 worker, `sendfile on`, `tcp_nopush on`, "
        "root = the releasehub blob directory, on its own loopback port; releasehub `serve` with its "
        "default 1 worker. The blob file is read once to warm the page cache and each server gets one "
        f"untimed download; then {res['runs']} rounds, each downloading once from releasehub (with "
        "`Authorization: Bearer`) and once from nginx, alternating. Client: "
        "`curl -s -o /dev/null -w '%{speed_download}'` (one connection, one core); every download is "
        "checked for HTTP 200 and the full size. Median of the rounds.",
        "",
    ]
    lines += _result_table(res)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    lines += [
        "| more figures | releasehub | nginx |",
        "|---|---|---|",
        f"| runs (MB/s, 1 MB = 10^6 bytes) | {_runs(res['releasehub_runs'])} | {_runs(res['reference_runs'])} |",
        f"| server CPU time per download, median (s) | {med(res['releasehub_cpu_s']):.2f} | "
        f"{med(res['reference_cpu_s']):.2f} |",
        "",
        _load_line(res),
        "",
    ]
    sc = res.get("syscalls")
    if sc:
        lines += [
            "System calls of each server (all its processes) during one extra, untimed download "
            "(`strace -f -c`):",
            "",
            "| syscall | releasehub (granian) | nginx |",
            "|---|---|---|",
        ]
        lines += [f"| `{k}` | {sc['releasehub'][k]:,} | {sc['nginx'][k]:,} |" for k in sc["releasehub"]
                  if sc["releasehub"][k] or sc["nginx"][k]]
        lines.append("")
    return lines


def section_head(res: dict) -> list[str]:
    get = res["wrk_get"]
    lines = [
        "## 2. Small-file HEAD rate: `HEAD /resolve/main/config.json` vs a bare FastAPI route",
        "",
        "**What**: requests per second of the metadata request every `hf_hub_download` starts with, on "
        "a private repo with a Bearer token (so authentication and the access decision are exercised), "
        "vs the same framework doing nothing.",
        "",
        "**How** (`bench/head_rps.py`): reference = `bench/bare_app.py`, a FastAPI app with one async "
        "GET/HEAD route of the same URL shape returning a 24-byte `Response`, served by granian with "
        "the options `releasehub serve` uses (ASGI interface, factory, 1 worker, default loop and "
        "threads, no access log). Both servers run at the same time; the token header is sent to both. "
        f"Load: `ab -k -i -c {res['connections']} -t {res['duration_s']}` (keep-alive HEAD); one untimed "
        f"2 s warm-up each, then {res['rounds']} alternating rounds, median; any non-2xx or failed request "
        "aborts the benchmark. The private repo is checked to answer 401 without the token.",
        "",
        "*Why ab and not wrk for HEAD*: wrk 4.1 (Debian) never tells its HTTP parser that the request "
        "was HEAD, so it waits for the body that the response's `Content-Length` announces; every "
        "connection stalls and wrk reports 0 requests (h2load behaves the same). ab (`-i`) handles "
        f"HEAD, is written in C, and used {res.get('ab_cpu_share', 0):.0%} of one core while loading "
        "the bare app, the fastest target (median over the rounds), so it is not the bottleneck. As a cross-check with wrk, the same route is also measured with GET "
        f"(`wrk -t{res['threads']} -c{res['connections']} -d{res['duration_s']}s -H Authorization`), "
        "which does the same work in releasehub's route plus a 43-byte file body.",
        "",
    ]
    lines += _result_table(res)
    lines += [
        "| more figures | req/s |",
        "|---|---|",
        f"| releasehub HEAD runs | {_runs(res['releasehub_runs'])} |",
        f"| bare async HEAD runs | {_runs(res['reference_runs'])} |",
        f"| bare FastAPI with a sync `def` route (one threadpool hop), HEAD, info | {res['bare_sync_rps']:,.0f} |",
        f"| releasehub GET, wrk | {get['releasehub']:,.0f} |",
        f"| bare async GET, wrk | {get['bare']:,.0f} |",
        f"| ratio with wrk GET | {get['ratio']:.2f}x |",
        "",
        f"Mean latency under {res['connections']} connections (ab): releasehub "
        f"{', '.join(res['latency_avg']['releasehub'])}; bare {', '.join(res['latency_avg']['bare'])}. "
        + _load_line(res),
        "",
    ]
    prof = res.get("profile")
    if prof:
        lines += _profile_tables(
            prof,
            f"**Profile** (py-spy `record --gil --rate 250` on the granian worker during one extra "
            f"{res['duration_s']} s ab run at {prof['rps_while_profiling']:,.0f} req/s; {prof['samples']} "
            "samples; `--gil` keeps only the thread holding the GIL, i.e. Python CPU time):",
        )
        if prof.get("releasehub_inclusive"):
            lines += ["| releasehub functions, inclusive | % |", "|---|---|"]
            lines += [f"| `{k}` | {v} |" for k, v in prof["releasehub_inclusive"][:10]]
            lines.append("")
        if prof.get("inprocess_us"):
            lines += [
                "Python time of one request with each ASGI app called directly in one process, one "
                "request after another (no server, no sockets; includes any thread-pool hop):",
                "",
                "| app | us per request |",
                "|---|---|",
            ]
            lines += [f"| {k} | {v:,} |" for k, v in prof["inprocess_us"].items()]
            lines.append("")
        elif prof.get("inprocess_error"):
            lines += [f"(In-process timing unavailable: `{prof['inprocess_error']}`.)", ""]
    return lines


def section_upload(res: dict) -> list[str]:
    secs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines = [
        "## 3. Upload: `releasehub push` vs `cp`",
        "",
        "**What**: end-to-end time to publish one large file, vs copying it on the same disk.",
        "",
        f"**How** (`bench/upload.py`): one {res['size_mib']} MiB random file, used for every run. "
        "`releasehub push DIR alice/REPO` is timed as a whole command (everything it does: process "
        "start-up, reading and hashing, the upload, the server's hashing, writing and fsync, the "
        "commit) against a fresh "
        "server with an empty data dir each time (nothing can be deduplicated). `cp` copies the "
        "file to a directory on the same filesystem; the copy is deleted after each run. Before every "
        "timed run the source is read once (page cache warm) and `sync` flushes earlier dirty pages "
        f"(untimed). {res['runs']} alternating runs, median. `cp` followed by `sync FILE` (fsync of the "
        "copy; the server fsyncs every blob) is listed for information.",
        "",
        "*Memory*: this VM returns memory that has been free for about 2 s to the host "
        "(virtio-balloon free page reporting), and a page-cache write into such memory pays a host "
        "fault, measured here at roughly 2-4 s per GiB, more than the copy itself. Whether a run pays "
        "it depended on timing (cp right after deleting the previous copy was fast, a push starting "
        "seconds after a server start was not), so every timed push and cp run gets the same "
        f"treatment: {res.get('warm_memory_mib', 0):,} MiB are touched before the run (untimed) and "
        "released in eight pieces, one every 0.4 s from the start of the run, so that page-cache "
        "writes land in freshly freed, host-backed pages, as on bare metal "
        "(`_common.WarmMemory`; `bench/upload.py --no-warm-memory` turns it off).",
        "",
    ]
    lines += _result_table(res)
    lines += [
        "| more figures | value |",
        "|---|---|",
        f"| push runs (s) | {secs(res['releasehub_runs_s'])} |",
        f"| cp runs (s) | {secs(res['reference_runs_s'])} |",
        f"| cp + fsync (info) | {res['cp_fsync_mbps']:,.1f} MB/s (runs {secs(res['cp_fsync_runs_s'])} s) |",
        f"| ratio push / (cp + fsync) (info) | {res['ratio_vs_cp_fsync']:.2f}x |",
        f"| CPU time of the push command per run (s) | {secs(res['push_client_cpu_s'])} |",
        f"| CPU time of the server per push (s) | {secs(res['push_server_cpu_s'])} |",
        "",
        _load_line(res),
        "",
    ]
    prof = res.get("profile")
    if prof:
        for side in ("client", "server"):
            if side in prof:
                p = prof[side]
                lines += _profile_tables(
                    p,
                    f"**Profile, {side}** (py-spy `record --rate 100`, default mode: samples of non-idle "
                    f"threads; one extra untimed push of {prof['wall_s']:.1f} s; {p['active_s']:.1f} s of "
                    "samples, so time blocked in fsync or waiting on the socket does not show):",
                    with_inclusive=False,
                )
    return lines


def code_line(results: dict) -> str:
    """Fingerprints of src/releasehub before/after each benchmark (others may edit the tree)."""
    prints = {name: r.get("code", {}) for name, r in results.items()}
    seen = {v for c in prints.values() for v in c.values()}
    if len(seen) == 1:
        return (f"`src/releasehub` fingerprint `{seen.pop()}` (sha256 of its .py files, via "
                "`_common.code_fingerprint`), unchanged during the run.")
    parts = "; ".join(f"{n}: `{c.get('before')}` → `{c.get('after')}`" for n, c in prints.items())
    return (f"**the server code changed during this run** ({parts}); a benchmark whose fingerprints "
            "differ measured a mix of versions.")


def render(results: dict, errors: dict, info: dict, started: str, elapsed_s: float, argv: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run_all.py` — do not edit by hand; rerun it instead "
        "(`.venv/bin/python bench/run_all.py`). Every ratio compares releasehub with a reference "
        "measured in the same run on the same machine. The benchmarks are not part of the test suite.",
        "",
        f"- **Date**: {started} (run took {elapsed_s / 60:.1f} min)",
        f"- **Command**: `.venv/bin/python bench/run_all.py {' '.join(argv)}`".rstrip() + "",
        f"- **Machine**: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Linux {info['kernel']}, "
        f"Python {info['python']}",
        f"- **Disk of /tmp**: `{info['tmp_fs']}`",
        f"- **Versions**: {info['versions']}",
        f"- **Tools**: {info['tools']}",
        f"- **Code measured**: {code_line(results)}",
        "",
        "## Summary",
        "",
        "| benchmark | releasehub | reference | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    names = {"download": "download 1 large file", "head_rps": "HEAD small file (auth, private)",
             "upload": "push 1 large file"}
    for name in BENCHMARKS:
        if name in results:
            r = results[name]
            lines.append(
                f"| {names[name]} | {_num(r['releasehub'], r['unit'])} | {_num(r['reference'], r['unit'])} "
                f"({r['reference_name']}) | **{r['ratio']:.2f}x** | >= {r['goal']}x | "
                f"{'yes' if r['met'] else '**NO**'} |")
        elif name in errors:
            lines.append(f"| {names[name]} | failed | | | | **NO** (see below) |")
    lines.append("")
    missed = [names[n] for n in BENCHMARKS if n in results and not results[n]["met"]]
    if missed:
        lines += [f"Goals **not met** in this run: {', '.join(missed)}. See the findings below.", ""]
    for name, section in (("download", section_download), ("head_rps", section_head), ("upload", section_upload)):
        if name in results:
            lines += section(results[name])
        elif name in errors:
            lines += [f"## {name}: FAILED", "", "```", errors[name].strip()[-3000:], "```", ""]
    lines += findings(results)
    lines += [
        "## Method notes",
        "",
        "- Servers run on loopback only, started by the benchmark in their own process group and "
        "stopped with `killpg` (SIGTERM, then SIGKILL) in `finally`; temporary data lives under "
        "`/tmp/rhbench-*` and is removed afterwards, also on failure.",
        "- releasehub runs exactly as `releasehub serve --data-dir D --port P` (1 granian worker, SQLite "
        "and local blobs in D); users and tokens are made with the `releasehub users/tokens` commands.",
        "- Throughput is in MB/s with 1 MB = 10^6 bytes; sizes are in MiB.",
        "- The machine may be shared with other work (test runs of other engineers). Before measuring, "
        "each benchmark waits (at most 3 minutes) for three consecutive 1-second samples with less than "
        "15% total CPU busy. During every timed run it measures the CPU used by anything else "
        "(user+nice+system from /proc/stat minus the benchmark, its clients and the servers under "
        "test); a run during which other work used more than 0.2 cores is repeated after the machine "
        "is quiet again (at most 3 attempts, the least disturbed one is kept), and the figures are "
        "reported with each section. Rounds alternate between releasehub and the reference so that "
        "remaining background load hits both alike. With only "
        f"{info['nproc']} cores, the load generator, the server and anything else share the same CPUs, "
        "so absolute figures are modest; the ratios are what the goals are about.",
        "- py-spy (installed from PyPI into `/tmp/rhbench-tools`, not into `.venv`) runs only in the "
        "extra, untimed profiling runs that follow the measured ones when a goal is missed "
        "(`--profile` / `--no-profile` force it on or off).",
        "",
    ]
    return "\n".join(lines)


def findings(results: dict) -> list[str]:
    """Observations derived from this run's figures, profiles and traces (nothing hard-coded about
    the server's code, which others may change between runs)."""
    lines = ["## Findings", ""]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    verdict = lambda r: "goal met" if r["met"] else "goal **NOT met**"  # noqa: E731

    d = results.get("download")
    if d:
        lines += [
            f"- **Download** ({d['ratio']:.2f}x of nginx, {verdict(d)}): `/resolve` answers with a "
            "`FileResponse`, which granian sends itself (ASGI pathsend), so no byte of the file passes "
            f"through Python. Per download granian still spent {med(d['releasehub_cpu_s']):.2f} s of CPU "
            f"against nginx's {med(d['reference_cpu_s']):.2f} s.",
        ]
        sc = d.get("syscalls") or {}
        rh, ng = sc.get("releasehub", {}), sc.get("nginx", {})
        if rh:
            if rh.get("sendfile", 0) == 0 and rh.get("read", 0):
                chunk = d["size_mib"] * 1024 / rh["read"]
                lines += [
                    f"  - strace: granian's pathsend does not use `sendfile`. For one {d['size_mib']} MiB "
                    f"download it made {rh['read']:,} `read` calls (about {chunk:,.0f} KiB each), "
                    f"{rh.get('writev', 0) + rh.get('write', 0):,} `write`/`writev` calls and "
                    f"{rh.get('futex', 0):,} `futex` calls (a reader thread handing chunks to the I/O "
                    f"thread), where nginx made {ng.get('sendfile', 0):,} `sendfile` calls. The extra "
                    "user-space copy is granian's, not releasehub's; if it ever matters, blobs can be "
                    "sent by a front proxy after releasehub authorises the request "
                    "(`X-Accel-Redirect` style).",
                ]
            else:
                lines += [f"  - strace counts: releasehub {rh}; nginx {ng}."]
        lines.append("")

    h = results.get("head_rps")
    if h:
        lines += [
            f"- **HEAD rate** ({h['ratio']:.2f}x of a bare FastAPI route, {verdict(h)}): releasehub "
            f"answers {h['releasehub']:,.0f} req/s, the bare async route {h['reference']:,.0f} req/s, "
            f"the bare route as a sync `def` (one thread-pool hop) {h['bare_sync_rps']:,.0f} req/s; "
            f"wrk with GET agrees ({h['wrk_get']['ratio']:.2f}x).",
        ]
        prof = h.get("profile") or {}
        buckets = dict(prof.get("buckets", []))
        if buckets:
            sql = sum(v for k, v in buckets.items() if k.startswith("SQL"))
            fw = buckets.get("FastAPI routing / dependency solving / middleware", 0) + \
                buckets.get("Starlette routing / middleware / response", 0)
            own = buckets.get("releasehub code (non-SQL: access decision, headers, blob stat)", 0)
            lines += [
                f"  - Where the worker's Python time goes (py-spy, GIL-holding samples): {sql:.0f}% in "
                f"SQLAlchemy/sqlite (token lookup {buckets.get('SQL: token lookup (authenticate)', 0):.0f}%, "
                "session begin/commit and other statements "
                f"{buckets.get('SQL: session begin/commit/close, other', 0):.0f}%), {fw:.0f}% in "
                f"FastAPI/Starlette routing, dependency solving and middleware, {own:.0f}% in "
                "releasehub's own non-SQL code; the rest is granian, the thread hop and idle waits.",
            ]
        if prof.get("releasehub_inclusive"):
            top = ", ".join(f"`{k.split(' (')[0]}` ({k.split('(')[-1].rstrip(')')}) {v}%"
                            for k, v in prof["releasehub_inclusive"][:5])
            lines += [f"  - Heaviest releasehub functions (inclusive): {top}."]
        ip = prof.get("inprocess_us") or {}
        if ip:
            rh_us = ip.get("releasehub HEAD /resolve (private repo, token)")
            bare_us = ip.get("bare FastAPI async route")
            if rh_us and bare_us:
                lines += [
                    f"  - Called directly (no server), one HEAD costs {rh_us:,} us of Python in releasehub "
                    f"against {bare_us:,} us for the bare route: the {rh_us - bare_us:,} us difference is "
                    "the route's own work (authentication, repo/revision/file lookups, access decision, "
                    "headers) and is what has to shrink for the ratio to rise.",
                ]
        lines.append("")

    u = results.get("upload")
    if u:
        push_s = med(u["releasehub_runs_s"])
        lines += [
            f"- **Upload** ({u['ratio']:.2f}x of cp, {verdict(u)}): a push of {u['size_mib']} MiB takes "
            f"{push_s:.1f} s where cp takes {med(u['reference_runs_s']):.2f} s (cp only fills the page "
            f"cache; cp + fsync reaches {u['cp_fsync_mbps']:,.0f} MB/s). CPU per push: client command "
            f"{med(u['push_client_cpu_s']):.1f} s, server {med(u['push_server_cpu_s']):.1f} s.",
        ]
        prof = u.get("profile") or {}
        for side in ("server", "client"):
            p = prof.get(side)
            if p and p.get("buckets"):
                top = ", ".join(f"{k} {v:.0f}%" for k, v in p["buckets"][:4])
                lines += [f"  - {side.capitalize()} samples (py-spy, {p['active_s']:.1f} s active): {top}."]
        size_mb = u["size_mib"] * 1024 * 1024 / 1e6
        hash_s = size_mb / u["sha256_mbps"]
        overlap = u["push_startup_s"] + hash_s
        serial = u["push_startup_s"] + 2 * hash_s
        goal_s = size_mb / (u["goal"] * u["reference"])
        lines += [
            f"  - Floor for any push, since each blob's sha256 must be computed at least once (the server "
            f"verifies or computes it): start-up ({u['push_startup_s']:.2f} s for `releasehub push --help`) + "
            f"one sha256 pass ({hash_s:.2f} s at this CPU's {u['sha256_mbps']:,.0f} MB/s) = "
            f"{overlap:.1f} s ({size_mb / overlap / u['reference']:.2f}x of cp) if everything else "
            f"overlapped, {serial:.1f} s ({size_mb / serial / u['reference']:.2f}x) if the client hashes "
            f"too, before sending. The goal ({u['goal']}x) means {goal_s:.2f} s here"
            + (", below even the first floor, so it cannot be met against a page-cache cp on this "
               "machine." if overlap > goal_s else ".")
            + f" The measured {push_s:.1f} s leaves {push_s - overlap:.1f} s above the first floor.",
        ]
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size of download and upload")
    parser.add_argument("--runs", type=int, default=None, help="runs of download (7) and upload (3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per HEAD load run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the HEAD benchmark")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON")
    args = parser.parse_args(argv)

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    info = machine_info()
    results: dict = {}
    errors: dict = {}
    for name in args.only:
        console.rule(f"[bold]{name}")
        try:
            if name == "download":
                results[name] = download.run(args.size_mib, args.runs or 7)
            elif name == "head_rps":
                results[name] = head_rps.run(args.duration, rounds=args.rounds)
            elif name == "upload":
                results[name] = upload.run(args.size_mib, args.runs or 3)
        except Exception:  # noqa: BLE001 - reported in the document
            errors[name] = traceback.format_exc()
            console.print(f"[red]{name} failed[/red]\n{errors[name]}")
    elapsed = time.monotonic() - t0
    text = render(results, errors, info, started, elapsed, argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    console.print(f"wrote {args.output}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "errors": errors, "machine": info,
                                         "date": started, "python": platform.python_version()}, indent=2))
    return results


if __name__ == "__main__":
    main()
