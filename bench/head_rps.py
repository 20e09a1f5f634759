"""Small-file HEAD rate: releasehub `HEAD /resolve/main/config.json` (private repo, Bearer token)
vs a bare FastAPI endpoint (bench/bare_app.py) served by granian with the same options.

releasehub is measured twice in the same run, on SQLite (the data dir's database) and on the
machine's PostgreSQL (127.0.0.1:5432, a fresh database made for the run and dropped after it,
as tests/conftest.py does); both servers, and the bare app, run side by side and every round
visits each in turn. `--no-postgres` leaves PostgreSQL out.

Load generator. wrk 4.1 (Debian) cannot measure HEAD: its HTTP parser is never told that the
request was HEAD, so it waits for the Content-Length body that a HEAD response announces but
never carries, and every connection stalls (0 requests completed; h2load behaves the same).
The HEAD figures therefore come from ApacheBench (`ab -k -i`: keep-alive, HEAD, C, one thread,
~15% of one core at these rates, so not the bottleneck). As a cross-check with the tool the
brief names, wrk (`-t1`, same connections and duration, `-H Authorization`) measures GET of the
same small file on both servers; GET and HEAD do the same work in releasehub's route.

Each server gets a short untimed warm-up, then rounds alternate between the servers; the
median requests/second is reported. When the ratio misses the goal (or with --profile) the
releasehub worker is sampled with py-spy during one extra ab run and the hottest functions are
summarised.

    .venv/bin/python bench/head_rps.py [--duration 10] [--connections 32] [--rounds 3] [--profile] [--no-postgres]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib  # noqa: E402

from _common import (  # noqa: E402
    add_diagnosis_flags,
    code_fingerprint, RetryBudget,
    PYTHON, bench_tmpdir, console, ensure_py_spy, ensure_tool, fmt, free_port, group_pids, median,
    postgres_backend_pids, postgres_database, print_table, releasehub_server, releasehub_server_env, run_ab, run_wrk, start_group,
    stop_group, summarize_profile, wait_for_quiet, wait_http_ok,
)

GOAL = 0.6
HERE = Path(__file__).resolve().parent


def _bucket(stack: list[str]) -> str:
    """A coarse label for where one sample's time goes."""
    leaf = stack[-1] if stack else ""
    if leaf.startswith(("Condition.wait", "Queue.get", "Event.wait", "select (", "Lock.acquire")):
        return "waiting (thread pool idle / lock / select)"
    if leaf.startswith("MPServer._spawn_asgi_lifespan_worker"):
        return "granian runtime (native code on the worker's main thread)"
    text = ";".join(stack)
    if "sqlalchemy/" in text or "sqlite3" in text or "psycopg/" in text:
        for needle, label in (("authenticate", "SQL: token lookup (authenticate)"),
                              ("find_repo", "SQL: repo lookup"),
                              ("resolve_revision", "SQL: revision lookup"),
                              ("get_file", "SQL: file lookup")):
            if needle in text:
                return label
        return "SQL: session begin/commit/close, other"
    if any("releasehub/" in f and "releasehub/app.py" not in f and "releasehub/cli/" not in f for f in stack):
        return "releasehub code (non-SQL: access decision, headers, blob stat)"
    if "anyio/" in text or "to_thread" in text or "run_in_threadpool" in text:
        return "threadpool hop (anyio to_thread)"
    if "fastapi/" in text:
        return "FastAPI routing / dependency solving / middleware"
    if "starlette/" in text:
        return "Starlette routing / middleware / response"
    return "other"


def profile_releasehub(server_proc, url: str, headers: list[str], duration: int, connections: int,
                       out_dir: Path) -> dict:
    """Sample the granian worker with py-spy while ab drives HEAD requests at it."""
    py_spy = ensure_py_spy()
    raw = out_dir / "profile.collapsed.txt"
    pids = group_pids(server_proc)
    # The granian worker (the process that runs the app) is the last child of the group.
    target = pids[-1] if pids else server_proc.pid
    cmd = [py_spy, "record", "--pid", str(target), "--rate", "250", "--duration", str(duration + 2),
           "--nonblocking", "--gil", "--format", "raw", "--output", str(raw)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        load = run_ab(url, duration, connections, headers)
    finally:
        try:
            _, err = spy.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate(timeout=10)
    if not raw.exists():
        raise RuntimeError(f"py-spy produced nothing: {err}")
    summary = summarize_profile(raw, bucket=_bucket)
    summary["rps_while_profiling"] = load.rps
    summary["pid"] = target
    return summary


def inprocess_cost(data_dir: Path, token: str, repo: str, path: str, iterations: int = 2000,
                   database_url: str | None = None) -> dict:
    """Python time of one request, calling each ASGI app directly (no server, no sockets).

    Requests run one after another in this process, so the figure is the app's own latency per
    request (including any thread-pool hop it makes), not a throughput. Only public entry points
    are used: `releasehub.app.create_app` and `Settings`.
    """
    import asyncio
    import time

    import bare_app
    from releasehub.app import create_app
    from releasehub.settings import Settings

    def scope(url_path: str, auth: bool) -> dict:
        headers = [(b"host", b"127.0.0.1")]
        if auth:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "HEAD",
                "scheme": "http", "path": url_path, "raw_path": url_path.encode(), "query_string": b"",
                "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def one(app, sc: dict) -> None:
        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        status: list[int] = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(sc, receive, send)
        if status != [200]:
            raise RuntimeError(f"in-process HEAD answered {status}")

    async def measure(app, sc: dict) -> float:
        for _ in range(100):
            await one(app, sc)
        start = time.perf_counter()
        for _ in range(iterations):
            await one(app, sc)
        return (time.perf_counter() - start) / iterations * 1e6

    async def main() -> dict:
        rh = create_app(Settings.from_env(data_dir=data_dir, database_url=database_url))
        url = f"/alice/{repo}/resolve/main/{path}"
        async with rh.router.lifespan_context(rh):
            return {
                "releasehub HEAD /resolve (private repo, token)": round(await measure(rh, scope(url, True))),
                "bare FastAPI async route": round(await measure(bare_app.create_app(), scope(url, True))),
                "bare FastAPI sync-def route": round(await measure(bare_app.create_app(), scope("/sync" + url, True))),
            }

    return asyncio.run(main())


def _start_bare(tmp: Path):
    port = free_port()
    proc = start_group([PYTHON, str(HERE / "bare_app.py"), "--port", str(port)], tmp / "bare.log", cwd=HERE)
    return proc, port


def run(duration: int = 10, connections: int = 32, threads: int = 1, rounds: int = 3,
        profile: bool | None = None, keep: bool = False, postgres: bool = True) -> dict:
    ensure_tool("ab", "apache2-utils")
    ensure_tool("wrk", "wrk")
    code_before = code_fingerprint()
    tmp = bench_tmpdir("head")
    bare_proc = None
    profile_summary: dict | None = None
    pg_profile: dict | None = None
    try:
        src = tmp / "src"
        src.mkdir()
        (src / "config.json").write_text('{"model_type": "bench", "hidden_size": 64}\n')
        bare_proc, bare_port = _start_bare(tmp)
        with contextlib.ExitStack() as stack:
            hub = stack.enter_context(releasehub_server(tmp / "data"))
            hub.push(src, "head", private=True)
            pg = None
            if postgres:
                pg_url = stack.enter_context(postgres_database("rhbench_head"))
                pg = stack.enter_context(releasehub_server_env(tmp / "data-pg", {"RELEASEHUB_DATABASE_URL": pg_url}))
                pg.push(src, "head", private=True)
            wait_http_ok(f"http://127.0.0.1:{bare_port}/api/health", timeout=60, proc=bare_proc)

            auth = {"releasehub": [f"Authorization: Bearer {hub.token}"]}
            hub_url = f"{hub.url}/alice/head/resolve/main/config.json"
            bare_url = f"http://127.0.0.1:{bare_port}/alice/head/resolve/main/config.json"
            bare_sync_url = f"http://127.0.0.1:{bare_port}/sync/alice/head/resolve/main/config.json"
            head_targets = {"releasehub": hub_url}
            if pg is not None:
                auth["postgres"] = [f"Authorization: Bearer {pg.token}"]
                head_targets["postgres"] = f"{pg.url}/alice/head/resolve/main/config.json"
            for name, url in head_targets.items():
                anon = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", url],
                                      capture_output=True, text=True, timeout=30).stdout
                authed = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "-H",
                                         auth[name][0], url], capture_output=True, text=True, timeout=30).stdout
                if anon != "401" or authed != "200":
                    raise RuntimeError(f"private repo ({name}): HEAD without token gave {anon} (want 401), "
                                       f"with {authed}")
            # The bare app gets the token header too (same request bytes); it ignores it.
            auth["bare"] = auth["bare_sync"] = auth["releasehub"]
            get_targets = dict(head_targets, bare=bare_url)
            head_targets.update(bare=bare_url, bare_sync=bare_sync_url)
            for name, url in head_targets.items():  # warm-up, untimed
                run_ab(url, 2, connections, auth[name])
            quiet = wait_for_quiet(max_wait_s=60)

            head: dict[str, list] = {name: [] for name in head_targets}
            get: dict[str, list] = {name: [] for name in get_targets}
            server_pids = group_pids(hub.proc) + group_pids(bare_proc) + (group_pids(pg.proc) if pg else [])
            budget = RetryBudget((lambda: server_pids + postgres_backend_pids(pg_url)) if pg else server_pids,
                                 max_retries=4)

            for _ in range(rounds):
                for name, url in head_targets.items():
                    res = budget(lambda url=url, name=name: run_ab(url, duration, connections, auth[name]))
                    if res.non_2xx or res.failed or res.requests == 0:
                        raise RuntimeError(f"ab HEAD {name}: {res.non_2xx} non-2xx, {res.failed} failed\n{res.raw}")
                    head[name].append(res)
                for name, url in get_targets.items():
                    res = budget(lambda url=url, name=name: run_wrk(url, duration, connections, threads,
                                                                   headers=auth[name]))
                    if res.non_2xx or res.requests == 0:
                        raise RuntimeError(f"wrk GET {name}: {res.non_2xx} non-2xx\n{res.raw}")
                    get[name].append(res)

            hub_rps = median([r.rps for r in head["releasehub"]])
            bare_rps = median([r.rps for r in head["bare"]])
            ratio = hub_rps / bare_rps
            pg_ratio = median([r.rps for r in head["postgres"]]) / bare_rps if pg is not None else None
            if profile or (profile is None and ratio < GOAL):
                console.print("[yellow]profiling the releasehub worker (SQLite) with py-spy...[/yellow]")
                profile_summary = profile_releasehub(hub.proc, hub_url, auth["releasehub"], duration, connections, tmp)
                try:
                    profile_summary["inprocess_us"] = inprocess_cost(hub.data_dir, hub.token, "head", "config.json")
                except Exception as exc:  # noqa: BLE001 - best effort, depends on the app's entry points
                    profile_summary["inprocess_error"] = repr(exc)
            if pg is not None and (profile or (profile is None and pg_ratio < GOAL)):
                console.print("[yellow]profiling the releasehub worker (PostgreSQL) with py-spy...[/yellow]")
                (tmp / "pg").mkdir(exist_ok=True)
                pg_profile = profile_releasehub(pg.proc, head_targets["postgres"], auth["postgres"], duration,
                                                connections, tmp / "pg")
                try:
                    pg_profile["inprocess_us"] = inprocess_cost(pg.data_dir, pg.token, "head", "config.json",
                                                                database_url=pg_url)
                except Exception as exc:  # noqa: BLE001
                    pg_profile["inprocess_error"] = repr(exc)
    finally:
        stop_group(bare_proc)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    bare_sync_rps = median([r.rps for r in head["bare_sync"]])
    get_hub = median([r.rps for r in get["releasehub"]])
    get_bare = median([r.rps for r in get["bare"]])
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "head_rps",
        "title": f"HEAD /resolve/main/config.json, private repo + Bearer token "
                 f"(ab -k -i -c{connections}, {duration}s per run)",
        "unit": "req/s",
        "releasehub": hub_rps,
        "reference": bare_rps,
        "reference_name": "bare FastAPI async route, same granian options",
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL,
        "rounds": rounds,
        "duration_s": duration,
        "connections": connections,
        "threads": threads,
        "cpu_busy_before": quiet,
        "foreign_cores": budget.foreign,
        "retried": budget.retried,
        "retry_rule": "budget",
        "ab_cpu_share": median([r.cpu_share for r in head["bare"]]),
        "releasehub_runs": [r.rps for r in head["releasehub"]],
        "reference_runs": [r.rps for r in head["bare"]],
        "bare_sync_rps": bare_sync_rps,
        "bare_sync_runs": [r.rps for r in head["bare_sync"]],
        "latency_avg": {name: [r.latency_avg for r in rs] for name, rs in head.items()},
        "wrk_get": {
            "releasehub": get_hub, "bare": get_bare, "ratio": get_hub / get_bare,
            "releasehub_runs": [r.rps for r in get["releasehub"]], "bare_runs": [r.rps for r in get["bare"]],
        },
        "profile": profile_summary,
    }
    if "postgres" in head:
        pg_rps = median([r.rps for r in head["postgres"]])
        pg_get = median([r.rps for r in get["postgres"]])
        result["postgres"] = {
            "releasehub": pg_rps, "ratio": pg_rps / bare_rps, "met": pg_rps / bare_rps >= GOAL,
            "runs": [r.rps for r in head["postgres"]], "wrk_get": pg_get, "wrk_get_ratio": pg_get / get_bare,
            "wrk_get_runs": [r.rps for r in get["postgres"]], "profile": pg_profile,
        }
    runs = lambda rs: ", ".join(fmt(r.rps, 0) for r in rs)  # noqa: E731
    rows = [
        ["releasehub HEAD, SQLite (ab)", fmt(hub_rps, 0), runs(head["releasehub"]), ", ".join(result["latency_avg"]["releasehub"])],
    ]
    if "postgres" in head:
        rows.append(["releasehub HEAD, PostgreSQL (ab)", fmt(result["postgres"]["releasehub"], 0), runs(head["postgres"]),
                     ", ".join(result["latency_avg"]["postgres"])])
    rows += [
        ["bare FastAPI async HEAD (ab)", fmt(bare_rps, 0), runs(head["bare"]), ", ".join(result["latency_avg"]["bare"])],
        ["bare FastAPI sync-def HEAD (ab, info)", fmt(bare_sync_rps, 0), runs(head["bare_sync"]),
         ", ".join(result["latency_avg"]["bare_sync"])],
        ["ratio releasehub/bare (HEAD), SQLite", f"{ratio:.2f}x", f"goal >= {GOAL}x: {'met' if result['met'] else 'NOT met'}", ""],
    ]
    if "postgres" in head:
        p = result["postgres"]
        rows.append(["ratio releasehub/bare (HEAD), PostgreSQL", f"{p['ratio']:.2f}x",
                     f"goal >= {GOAL}x: {'met' if p['met'] else 'NOT met'}", ""])
    rows += [
        ["releasehub GET, SQLite (wrk, cross-check)", fmt(get_hub, 0), runs(get["releasehub"]), ""],
    ]
    if "postgres" in head:
        rows.append(["releasehub GET, PostgreSQL (wrk, cross-check)", fmt(result["postgres"]["wrk_get"], 0),
                     runs(get["postgres"]), ""])
    rows += [
        ["bare FastAPI GET (wrk, cross-check)", fmt(get_bare, 0), runs(get["bare"]), ""],
        ["ratio releasehub/bare (GET, wrk), SQLite", f"{get_hub / get_bare:.2f}x", "", ""],
    ]
    print_table(result["title"], ["", "median req/s", "runs req/s", "mean latency"], rows)
    for label, prof in (("SQLite", profile_summary), ("PostgreSQL", pg_profile)):
        if not prof:
            continue
        print_table(f"py-spy ({label}): where the releasehub worker spends its time "
                    f"({prof['samples']} samples, {fmt(prof['rps_while_profiling'], 0)} req/s "
                    f"while sampled)", ["bucket", "% of samples"],
                    [[k, v] for k, v in prof["buckets"]])
        print_table(f"py-spy ({label}): top functions (inclusive)", ["function", "%"],
                    [[k, v] for k, v in prof["inclusive"]])
        print_table(f"py-spy ({label}): top functions (self)", ["function", "%"], [[k, v] for k, v in prof["self"]])
        if prof.get("inprocess_us"):
            print_table(f"Python time per request ({label}), ASGI app called directly, sequential",
                        ["app", "us per request"], [[k, v] for k, v in prof["inprocess_us"].items()])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (GET cross-check)")
    parser.add_argument("--rounds", type=int, default=3)
    add_diagnosis_flags(parser, "profile", "profile the releasehub worker with py-spy")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false",
                        help="measure releasehub on SQLite only")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args.duration, args.connections, args.threads, args.rounds, args.profile, args.keep, args.postgres)


if __name__ == "__main__":
    main()
