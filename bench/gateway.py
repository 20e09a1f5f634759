"""Added latency of the OpenAI-compatible gateway (`/v1/chat/completions`) vs LiteLLM's proxy.

The issue's claim: the gateway adds little over calling the engine directly. Goal: releasehub's
p50 overhead under 1 ms at 1 concurrent request, and under a quarter of LiteLLM's proxy's
overhead at every concurrency level (1, 16, 64), non-streaming and for the time to the first
token when streaming.

The four targets, all on loopback, all in one run
    - engine direct: `tests/engine/openai_engine.py` (a deterministic OpenAI-protocol engine, no
      ML: the completion is the prompt's words reversed, one word per token; granian, 1 worker),
      called at http://127.0.0.1:P/v1 with `"model": "engine-model"`.
    - releasehub: `releasehub serve` (1 granian worker), set up as an operator would: a user and
      a write token (`releasehub users/tokens create`), the repo `alice/hosted` (POST
      /api/repos/create), a policy whose `api` section allows 1,000,000 requests a minute (so the
      limiter runs on every request but never refuses), `releasehub hosted attach alice/hosted
      --backend http://127.0.0.1:P/v1 --model engine-model` and an API key from `releasehub keys
      create alice --repo alice/hosted --tier default`. Called with `Authorization: Bearer <key>`
      and `"model": "alice/hosted"`.
    - LiteLLM: `litellm[proxy]` (pinned, see LITELLM_VERSION) in its own virtualenv
      bench/.venv-litellm (created by this file when missing; never in the project's .venv),
      `litellm --config config.yaml --port R --num_workers 1` with one model `alice/hosted` ->
      `openai/engine-model` at the same engine, a master key, and the model's `rpm` limit
      enforced in memory by the router's `enforce_model_rate_limits` pre-call check. LiteLLM's
      per-key (virtual key) limits need its Postgres database; without one, any key but the
      master key is refused ("No connected db."), so the master key is used. uvicorn's access
      log is turned off (as releasehub and the engine run without one).
    - nginx (a reference, no goal): the Debian package's nginx (installed with apt when missing)
      as a bare reverse proxy in front of the same engine: 1 worker process, access log off, an
      `upstream` block with `keepalive 128` (connections to the engine are reused),
      `proxy_http_version 1.1`, `proxy_set_header Connection ""`, `proxy_buffering off` (SSE
      chunks pass through one by one), no auth, no limits; called at http://127.0.0.1:N/v1 with
      `"model": "engine-model"`, exactly like the engine. Its overhead is the cost of one
      reverse-proxy hop on this machine, a floor for any proxy. `--no-nginx` leaves it out; if it
      cannot be installed or started, the error is recorded (`nginx_error`) and the run goes on.

The load client (this process)
    httpx, HTTP/1.1 keep-alive, `c` workers sending requests back to back until the pass's count
    is reached (or its deadline), each worker with its own AsyncClient holding one connection, so
    the connections open equal the concurrency. (One AsyncClient per target with a pool of `c`
    connections, `--client-pool shared`, was tried first: httpcore's pool costs the client CPU
    that grows with the pool's size on every request, and at c=64 the client, not the targets,
    was the bottleneck: about 100 req/s to the bare engine, p50 near 0.5 s.) Non-streaming: the time from sending to having read the whole body. Streaming
    (`"stream": true`): the time to the first SSE chunk carrying content (time to first token);
    the rest of the stream is read (and must end with `data: [DONE]`), its total time recorded
    for information. Every response must be 200 with `choices` (streams: content and [DONE]);
    anything else counts as an error and is left out of the latencies.

    For each level and mode: 3 rounds, each running the targets one after the other
    (engine, releasehub, LiteLLM, nginx) so that drift hits them alike; each pass starts with an
    untimed warm-up (which also opens the pool's connections), then a third of the requests
    (300 at c=1, 1,000 at c=16 and 64, per target). A pass during which other work used more
    than 0.2 cores is repeated (`_common.measured`). p50/p99 over all the timed requests of a
    target; overhead = target - engine direct at the same percentile, level and mode. Server CPU
    per request: CPU time of all the target's processes (nginx: master and worker) during its
    timed passes, divided by its successful requests.

    .venv/bin/python bench/gateway.py [--rounds 3] [--requests 1000] [--requests-c1 300]
                                      [--levels 1 16 64] [--no-litellm] [--no-nginx] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    process_cpu_s,
    PYTHON, RELEASEHUB, ROOT, add_diagnosis_flags, bench_tmpdir, code_fingerprint, console, ensure_py_spy,
    ensure_tool, free_port, group_pids, measured, nginx_server, print_table, releasehub_server, start_group, stop_group,
    summarize_profile,
    wait_for_quiet, wait_http_ok,
)

GOAL_P50_C1_MS = 1.0        # releasehub's p50 overhead at 1 concurrent request
GOAL_VS_LITELLM = 0.25      # releasehub's overhead / LiteLLM's, at every level
LEVELS = (1, 16, 64)
MODES = ("non-streaming", "streaming")
ENGINE_MODEL = "engine-model"
REPO_ID = "alice/hosted"
RPM_LIMIT = 1_000_000
ENGINE_SCRIPT = ROOT / "tests" / "engine" / "openai_engine.py"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
# 1.82.7 and 1.82.8 on PyPI were malicious uploads (a hijacked maintainer account, March 2026),
# and a later release was reported compromised as well; 1.82.6 is the last release that came out
# of the project's own CI before the first incident. Pinned so that the bench never pulls
# whatever is newest.
LITELLM_VERSION = "1.82.6"
LITELLM_MASTER_KEY = "sk-rhbench-master-key"
PROMPT = "please reverse these eight words for the benchmark now"  # 8 words -> 8 tokens back
MAX_TOKENS = 16
PASS_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 30.0
TARGETS = ("engine", "releasehub", "litellm", "nginx")
CLIENT_POOL = "per-worker"  # or "shared" (see _pass); --client-pool
_SSL_CONTEXT = ssl.create_default_context()  # unused on http://, but built once instead of per client
LABELS = {"engine": "engine direct", "releasehub": "releasehub gateway", "litellm": "LiteLLM proxy",
          "nginx": "nginx proxy_pass (no auth, no limits)"}


# ---------------------------------------------------------------- LiteLLM's virtualenv


def _base_python() -> str:
    """The interpreter the project's .venv was made from (LiteLLM gets its own venv of it)."""
    return str(Path(PYTHON).resolve())


def ensure_litellm() -> str:
    """Path of bench/.venv-litellm/bin/litellm, creating the venv and installing LiteLLM if needed."""
    binary = LITELLM_VENV / "bin" / "litellm"
    pip = LITELLM_VENV / "bin" / "pip"
    if binary.exists() and litellm_version() == LITELLM_VERSION:
        return str(binary)
    if not (LITELLM_VENV / "bin" / "python").exists():
        console.print(f"[yellow]creating {LITELLM_VENV} for LiteLLM (not the project's .venv)[/yellow]")
        subprocess.run([_base_python(), "-m", "venv", str(LITELLM_VENV)], check=True, timeout=300)
    console.print(f"[yellow]pip install 'litellm[proxy]=={LITELLM_VERSION}' into {LITELLM_VENV}[/yellow]")
    subprocess.run([str(pip), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True, timeout=1800)
    check_no_startup_hooks()
    if not binary.exists():
        raise RuntimeError(f"{binary} missing after installing litellm[proxy]=={LITELLM_VERSION}")
    return str(binary)


def check_no_startup_hooks() -> None:
    """Refuse a venv with an unexpected .pth file (the March 2026 malicious build shipped one)."""
    for site in LITELLM_VENV.glob("lib/python3*/site-packages"):
        odd = [p.name for p in site.glob("*.pth") if p.name != "distutils-precedence.pth"
               and not p.name.startswith("_virtualenv")]
        if odd:
            raise RuntimeError(f"unexpected .pth files in {site}: {odd}; not running LiteLLM from it")


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         check=False, capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or None


def _pkg_versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            f"for n in {list(names)!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except Exception: pass\n"
            "print(json.dumps(out))")
    out = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {}


# ---------------------------------------------------------------- servers


def start_engine(tmp: Path) -> tuple[subprocess.Popen, str]:
    """The test engine as its own process group; returns (process, base URL ending in /v1)."""
    port = free_port()
    proc = start_group([PYTHON, str(ENGINE_SCRIPT), "--port", str(port), "--model", ENGINE_MODEL],
                       tmp / "engine.log", cwd=ROOT)
    base = f"http://127.0.0.1:{port}/v1"
    wait_http_ok(f"{base}/models", timeout=60, proc=proc)
    return proc, base


def _cli(args: list[str], timeout: float = 120) -> str:
    result = subprocess.run([RELEASEHUB, *args], check=False, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"releasehub {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def setup_releasehub(hub: Any, engine_base: str) -> str:
    """Repo, policy, hosted engine and an API key, as an operator would; returns the key's secret."""
    auth = {"Authorization": f"Bearer {hub.token}"}
    with httpx.Client(base_url=hub.url, headers=auth, timeout=30) as client:
        namespace, name = REPO_ID.split("/")
        got = client.post("/api/repos/create", json={"name": name, "organization": namespace, "type": "model"})
        if got.status_code != 200:
            raise RuntimeError(f"creating {REPO_ID}: {got.status_code} {got.text}")
        got = client.put(f"/api/models/{REPO_ID}/policy", json={"api": {"requests_per_minute": RPM_LIMIT}})
        if got.status_code != 200:
            raise RuntimeError(f"setting the policy of {REPO_ID}: {got.status_code} {got.text}")
    # Over HTTP like every command; attaching an engine needs a server admin's token (alice is the first admin).
    remote = ["--endpoint", hub.url, "--token", hub.token]
    _cli(["hosted", "attach", REPO_ID, "--backend", engine_base, "--model", ENGINE_MODEL, *remote])
    out = _cli(["keys", "create", hub.user, "--repo", REPO_ID, "--tier", "default", *remote])
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1]


def write_litellm_config(tmp: Path, engine_base: str) -> tuple[Path, Path]:
    """config.yaml (JSON is valid YAML) and a uvicorn log config without the access log."""
    config = {
        "model_list": [{
            "model_name": REPO_ID,
            "litellm_params": {"model": f"openai/{ENGINE_MODEL}", "api_base": engine_base, "api_key": "unused",
                               "rpm": RPM_LIMIT},
        }],
        "router_settings": {"optional_pre_call_checks": ["enforce_model_rate_limits"]},
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    path = tmp / "litellm-config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
    log_path = tmp / "uvicorn-log.json"
    log_path.write_text(json.dumps(log_config, indent=2) + "\n")
    return path, log_path


def litellm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the model price list at start-up
               LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR", PYTHONUNBUFFERED="1")
    return env


def start_litellm(binary: str, tmp: Path, engine_base: str) -> tuple[subprocess.Popen, str]:
    config, log_config = write_litellm_config(tmp, engine_base)
    port = free_port()
    proc = start_group([binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                        "--num_workers", "1", "--log_config", str(log_config)],
                       tmp / "litellm.log", env=litellm_env(), cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base}/health/liveliness", timeout=180, proc=proc)
    return proc, f"{base}/v1"


# nginx as a bare reverse proxy in front of the engine (a floor reference; see the docstring).
# keepalive_requests is raised on both sides so that neither the client's connections nor the
# pooled ones to the engine are closed after nginx's default 1,000 requests (the engine and
# releasehub do not close them either).
NGINX_SETUP = ("1 worker process, access log off, upstream keepalive 128, proxy_http_version 1.1, "
               "proxy_set_header Connection \"\", proxy_buffering off, no auth, no limits")


def nginx_version(binary: str) -> str | None:
    out = subprocess.run([binary, "-v"], check=False, capture_output=True, text=True, timeout=30)
    text = (out.stderr or out.stdout).strip()  # "nginx version: nginx/1.22.1"
    return text.rsplit("/", 1)[-1] if "/" in text else (text or None)


def start_nginx_proxy(tmp: Path, engine_base: str) -> tuple[subprocess.Popen, str]:
    """nginx proxying to the engine, as its own process group; returns (process, base URL ending in /v1)."""
    upstream = httpx.URL(engine_base)
    port = free_port()
    http = ("    tcp_nodelay on;\n    keepalive_timeout 300;\n    keepalive_requests 1000000;\n"
            f"    upstream engine {{\n        server {upstream.host}:{upstream.port};\n        keepalive 128;\n"
            "        keepalive_requests 1000000;\n        keepalive_timeout 300s;\n    }\n"
            f"    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n"
            "            proxy_pass http://engine;\n            proxy_http_version 1.1;\n"
            "            proxy_set_header Connection \"\";\n            proxy_buffering off;\n        }\n    }\n")
    proc = nginx_server(tmp / "nginx", http, tmp / "nginx.log")
    base = f"http://127.0.0.1:{port}/v1"
    wait_http_ok(f"{base}/models", timeout=30, proc=proc)
    return proc, base


def _nginx_log(tmp: Path) -> str:
    return "".join(p.read_text(errors="replace")[-1500:] for p in (tmp / "nginx.log", tmp / "nginx" / "error.log")
                   if p.exists())


# ---------------------------------------------------------------- the load client


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": MAX_TOKENS}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


async def _one(client: httpx.AsyncClient, url: str, body: bytes, stream: bool) -> tuple[float | None, float, str | None]:
    """(latency or time to first content chunk in s, total s, error or None) of one request."""
    headers = {"content-type": "application/json"}
    t0 = time.perf_counter()
    if not stream:
        resp = await client.post(url, content=body, headers=headers)
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            return None, elapsed, f"HTTP {resp.status_code}: {resp.text[:200]}"
        try:
            choices = resp.json().get("choices")
        except ValueError:
            return None, elapsed, f"not JSON: {resp.text[:200]}"
        if not choices or not (choices[0].get("message") or {}).get("content"):
            return None, elapsed, f"no choices/content: {resp.text[:200]}"
        return elapsed, elapsed, None
    first: float | None = None
    done = False
    async with client.stream("POST", url, content=body, headers=headers) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")
            return None, time.perf_counter() - t0, f"HTTP {resp.status_code}: {text[:200]}"
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            if first is None:
                try:
                    chunk = json.loads(data)
                except ValueError:
                    return None, time.perf_counter() - t0, f"bad chunk: {data[:200]}"
                choices = chunk.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    if first is None:
        return None, total, "stream without content"
    if not done:
        return None, total, "stream without data: [DONE]"
    return first, total, None


async def _load(clients: list[httpx.AsyncClient], url: str, body: bytes, stream: bool, count: int,
                deadline: float) -> dict[str, Any]:
    """One worker per client (len(clients) = the concurrency), back to back until `count` or the deadline."""
    latencies: list[float] = []
    totals: list[float] = []
    errors: Counter[str] = Counter()
    issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < count and time.monotonic() < deadline:
            issued += 1
            try:
                lat, total, err = await _one(client, url, body, stream)
            except httpx.HTTPError as exc:
                lat, total, err = None, 0.0, f"{type(exc).__name__}: {exc}"[:200]
            if err is None:
                latencies.append(lat)
                totals.append(total)
            else:
                errors[err] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    wall = time.perf_counter() - t0
    return {"latencies": latencies, "totals": totals, "errors": dict(errors), "wall_s": wall,
            "unfinished": max(count - issued, 0)}


async def _pass(base: str, headers: dict[str, str], model: str, stream: bool, count: int, concurrency: int,
                warmup: int, deadline_s: float = PASS_DEADLINE_S, server_pids: list[int] | None = None
                ) -> dict[str, Any]:
    """An untimed warm-up, then `count` timed requests at `concurrency`. The CPU time of the client
    and of `server_pids` is taken around the timed requests only (`client_cpu_s`, `server_cpu_s`).

    CLIENT_POOL "per-worker" (the default): each of the `concurrency` workers has its own
    AsyncClient with one keep-alive connection, so the connections in use equal the concurrency.
    "shared": one AsyncClient whose pool has `concurrency` connections. httpcore's shared pool
    costs the client CPU that grows with the pool's size on every request (measured here: engine
    direct at 64 connections fell from about 1,300 to about 100 req/s, the client being the
    bottleneck), which would swamp what is measured.
    """
    url = f"{base}/chat/completions"
    body = _body(model, stream)
    size = 1 if CLIENT_POOL == "per-worker" else concurrency
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    clients = [httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, headers=headers, http1=True,
                                 http2=False, verify=_SSL_CONTEXT)
               for _ in range(concurrency if CLIENT_POOL == "per-worker" else 1)]
    workers = clients if CLIENT_POOL == "per-worker" else clients * concurrency
    try:
        warm = await _load(workers, url, body, stream, warmup, time.monotonic() + PASS_DEADLINE_S)
        before = resource.getrusage(resource.RUSAGE_SELF)
        server_before = process_cpu_s(server_pids or [])
        got = await _load(workers, url, body, stream, count, time.monotonic() + deadline_s)
        got["server_cpu_s"] = process_cpu_s(server_pids or []) - server_before
        after = resource.getrusage(resource.RUSAGE_SELF)
        got["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finally:
        for client in clients:
            await client.aclose()
    got["warmup_errors"] = warm["errors"]
    return got


def _probe(base: str, headers: dict[str, str], model: str) -> dict[str, Any]:
    """One request: checks the target answers, and keeps its x-ratelimit-* headers (evidence that
    a limiter is on the path)."""
    with httpx.Client(timeout=30, headers=headers) as client:
        resp = client.post(f"{base}/chat/completions", content=_body(model, False),
                           headers={"content-type": "application/json"})
    if resp.status_code != 200 or not resp.json().get("choices"):
        raise RuntimeError(f"{base}: {resp.status_code} {resp.text[:500]}")
    return {"ratelimit_headers": {k: v for k, v in resp.headers.items() if "ratelimit" in k.lower()},
            "content": resp.json()["choices"][0]["message"]["content"]}


# ---------------------------------------------------------------- profile (when a goal is missed)


_BUCKETS = (  # (substring of a frame, label): the frame nearest the leaf that matches decides
    (("aiohttp/", "yarl/", "multidict/", "httpx/", "httpcore/", "h11/"), "calling the engine (aiohttp)"),
    (("sqlalchemy/", "sqlite3"), "SQL (SQLAlchemy / sqlite3)"),
    (("logging/",), "logging (log records, handlers)"),
    (("json/",), "JSON (parse, encode)"),
    (("releasehub/gateway/ratelimit",), "releasehub: rate limiter"),
    (("releasehub/gateway/metering",), "releasehub: metering"),
    (("anyio/", "to_thread", "run_in_threadpool"), "threadpool hop (anyio to_thread)"),
    (("fastapi/", "starlette/", "pydantic"), "FastAPI / Starlette middleware, ASGI send"),
    (("releasehub/",), "releasehub: gateway code (key, repo, access, checks, relay)"),
    (("granian/",), "granian runtime and ASGI glue"),
)


def _bucket(stack: list[str]) -> str:
    """A coarse label for where one sample of the releasehub worker goes: the background writer
    thread as a whole, else the library or module of the frame nearest the leaf."""
    leaf = stack[-1] if stack else ""
    if leaf.startswith(("Condition.wait", "Queue.get", "Event.wait", "select (", "Lock.acquire")):
        return "waiting (thread pool idle / lock / select)"
    if leaf.startswith("MPServer._spawn_asgi_lifespan_worker"):
        return "granian runtime (native code on the worker's main thread)"
    if any("releasehub/auditlog/log.py" in frame for frame in stack):
        return "metering and audit writes (background thread, batched)"
    for frame in reversed(stack):
        if "releasehub/cli/" in frame or "releasehub/app.py" in frame:
            continue
        for needles, label in _BUCKETS:
            if any(needle in frame for needle in needles):
                return label
    return "other"


def profile_gateway(hub_proc: subprocess.Popen, base: str, headers: dict[str, str], out_dir: Path,
                    duration_s: int = 10) -> dict:
    """py-spy (GIL-holding samples) on the granian worker during an extra, untimed c=1 pass."""
    py_spy = ensure_py_spy()
    raw = out_dir / "gateway-profile.collapsed.txt"
    pids = group_pids(hub_proc)
    target = pids[-1] if pids else hub_proc.pid  # the worker is the last process of the group
    cmd = [py_spy, "record", "--pid", str(target), "--rate", "250", "--duration", str(duration_s),
           "--nonblocking", "--gil", "--format", "raw", "--output", str(raw)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let py-spy attach
    got = asyncio.run(_pass(base, headers, REPO_ID, False, 100_000, 1, 0, deadline_s=duration_s - 2))
    try:
        _, err = spy.communicate(timeout=duration_s + 60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate(timeout=10)
    if not raw.exists():
        raise RuntimeError(f"py-spy produced nothing: {err}")
    summary = summarize_profile(raw, bucket=_bucket)
    summary["requests"] = len(got["latencies"])
    summary["rps_while_profiling"] = len(got["latencies"]) / got["wall_s"] if got["wall_s"] else 0.0
    summary["pid"] = target
    return summary


# ---------------------------------------------------------------- the benchmark


def _stats(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "mean": sum(ms) / len(ms) if ms else float("nan"),
            "min": min(ms) if ms else float("nan"), "n": len(ms)}


def summarize(raw: dict, levels: tuple[int, ...]) -> tuple[list[str], dict, list[dict], int]:
    """(targets measured, table of stats per mode/level/target, goals, errors) from the raw samples."""
    measured_targets = [t for t in TARGETS if any(t in raw[m].get(str(lv), {}) for m in MODES for lv in levels)]
    table: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODES}
    for mode in MODES:
        for level in levels:
            cell = raw[mode][str(level)]
            row: dict[str, Any] = {}
            for name in measured_targets:
                acc = cell[name]
                row[name] = {**_stats(acc["latencies"]), "errors": sum(acc["errors"].values()),
                             "error_kinds": dict(acc["errors"].most_common(5)),
                             "warmup_errors": sum(acc["warmup_errors"].values()),
                             "unfinished": acc["unfinished"],
                             "round_p50_ms": acc["round_p50_ms"],
                             "total_p50_ms": percentile([v * 1000 for v in acc["totals"]], 50),
                             "cpu_ms_per_request": 1000 * acc["cpu_s"] / max(acc["ok"], 1),
                             "client_cpu_ms_per_request": 1000 * acc["client_cpu_s"] / max(acc["ok"], 1),
                             "rps": acc["ok"] / acc["wall_s"] if acc["wall_s"] else 0.0}
            for name in measured_targets:
                if name == "engine":
                    continue
                for q in ("p50", "p99"):
                    row[name][f"overhead_{q}"] = row[name][q] - row["engine"][q]
            if "litellm" in row:
                for q in ("p50", "p99"):
                    theirs = row["litellm"][f"overhead_{q}"]
                    row[f"ratio_{q}"] = row["releasehub"][f"overhead_{q}"] / theirs if theirs > 0 else None
            table[mode][str(level)] = row

    errors_total = sum(table[m][str(lv)][t]["errors"] + table[m][str(lv)][t]["unfinished"]
                       for m in MODES for lv in levels for t in measured_targets)
    goals: list[dict[str, Any]] = []
    for mode in MODES:
        for level in levels:
            row = table[mode][str(level)]
            over = row["releasehub"]["overhead_p50"]
            if level == 1:
                goals.append({"mode": mode, "level": level, "what": "p50 overhead", "value_ms": over,
                              "goal": f"< {GOAL_P50_C1_MS:g} ms", "met": over < GOAL_P50_C1_MS})
            ratio = row.get("ratio_p50")
            goals.append({"mode": mode, "level": level, "what": "p50 overhead / LiteLLM's", "value": ratio,
                          "goal": f"< {GOAL_VS_LITELLM:g}x",
                          "met": ratio is not None and (over < 0 or ratio < GOAL_VS_LITELLM)})
    return measured_targets, table, goals, errors_total


def run(rounds: int = 3, requests: int = 1000, requests_c1: int = 300, levels: tuple[int, ...] = LEVELS,
        with_litellm: bool = True, keep: bool = False, profile: bool | None = None, with_nginx: bool = True) -> dict:
    code_before = code_fingerprint()
    tmp = bench_tmpdir("gateway")
    engine_proc = litellm_proc = nginx_proc = None
    litellm_error: str | None = None
    litellm_info: dict[str, Any] = {}
    nginx_error: str | None = None
    nginx_info: dict[str, Any] = {}
    raw: dict[str, dict[str, dict[str, dict[str, Any]]]] = {m: {} for m in MODES}
    foreign: list[float] = []
    retried = 0
    probes: dict[str, Any] = {}
    profile_summary: dict[str, Any] | None = None
    try:
        litellm_bin = None
        if with_litellm:
            try:
                litellm_bin = ensure_litellm()
                check_no_startup_hooks()
            except Exception as exc:  # noqa: BLE001 - reported, releasehub is measured alone
                litellm_error = f"install: {type(exc).__name__}: {exc}"
        nginx_bin = None
        if with_nginx:
            try:
                nginx_bin = ensure_tool("nginx", "nginx")
                nginx_info["version"] = nginx_version(nginx_bin)
            except Exception as exc:  # noqa: BLE001 - reported, the others are measured without it
                nginx_error = f"install: {type(exc).__name__}: {exc}"
        engine_proc, engine_base = start_engine(tmp)
        console.print(f"engine at {engine_base}")
        with releasehub_server(tmp / "data") as hub:
            key = setup_releasehub(hub, engine_base)
            rh_base = f"{hub.url}/v1"
            targets: dict[str, tuple[str, dict[str, str], str]] = {
                "engine": (engine_base, {}, ENGINE_MODEL),
                "releasehub": (rh_base, {"Authorization": f"Bearer {key}"}, REPO_ID),
            }
            if litellm_bin is not None and litellm_error is None:
                try:
                    t0 = time.perf_counter()
                    litellm_proc, litellm_base = start_litellm(litellm_bin, tmp, engine_base)
                    litellm_info["startup_s"] = time.perf_counter() - t0
                    targets["litellm"] = (litellm_base, {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}, REPO_ID)
                except Exception as exc:  # noqa: BLE001
                    log = (tmp / "litellm.log").read_text(errors="replace")[-3000:] if (tmp / "litellm.log").exists() else ""
                    litellm_error = f"start: {type(exc).__name__}: {exc}\n{log}"
            if nginx_bin is not None and nginx_error is None:
                try:
                    t0 = time.perf_counter()
                    nginx_proc, nginx_base = start_nginx_proxy(tmp, engine_base)
                    nginx_info["startup_s"] = time.perf_counter() - t0
                    targets["nginx"] = (nginx_base, {}, ENGINE_MODEL)
                except Exception as exc:  # noqa: BLE001
                    nginx_error = f"start: {type(exc).__name__}: {exc}\n{_nginx_log(tmp)}"
            for name, (base, headers, model) in list(targets.items()):
                try:
                    probes[name] = _probe(base, headers, model)
                except Exception as exc:  # noqa: BLE001
                    if name == "litellm":
                        log = (tmp / "litellm.log").read_text(errors="replace")[-3000:]
                        litellm_error = f"first request: {exc}\n{log}"
                    elif name == "nginx":
                        nginx_error = f"first request: {exc}\n{_nginx_log(tmp)}"
                    else:
                        raise
                    del targets[name]
            if litellm_error:
                console.print(f"[red]LiteLLM not measured: {litellm_error}[/red]")
            if nginx_error:
                console.print(f"[red]nginx not measured: {nginx_error}[/red]")
            pids = {"engine": group_pids(engine_proc), "releasehub": group_pids(hub.proc)}
            if litellm_proc is not None and "litellm" in targets:
                pids["litellm"] = group_pids(litellm_proc)
            if nginx_proc is not None and "nginx" in targets:
                pids["nginx"] = group_pids(nginx_proc)  # master and worker (started by now: it answered)
            all_pids = [p for ps in pids.values() for p in ps]
            quiet = wait_for_quiet()
            for level in levels:
                total = requests_c1 if level == 1 else requests
                per_round = math.ceil(total / rounds)
                warmup = max(20, 2 * level)
                for mode in MODES:
                    stream = mode == "streaming"
                    cell = raw[mode].setdefault(str(level), {})
                    for number in range(rounds):
                        for name, (base, headers, model) in targets.items():
                            def once(base=base, headers=headers, model=model, name=name, stream=stream,
                                     count=per_round, level=level, warmup=warmup) -> tuple[dict, float]:
                                got = asyncio.run(_pass(base, headers, model, stream, count, level, warmup,
                                                        server_pids=pids[name]))
                                return got, got["server_cpu_s"]

                            sample = measured(once, all_pids)
                            got, cpu = sample.value
                            foreign.append(sample.foreign)
                            retried += sample.tries - 1
                            acc = cell.setdefault(name, {"latencies": [], "totals": [], "errors": Counter(),
                                                         "round_p50_ms": [], "cpu_s": 0.0, "ok": 0, "wall_s": 0.0,
                                                         "client_cpu_s": 0.0,
                                                         "unfinished": 0, "warmup_errors": Counter()})
                            acc["latencies"] += got["latencies"]
                            acc["totals"] += got["totals"]
                            acc["errors"].update(got["errors"])
                            acc["warmup_errors"].update(got["warmup_errors"])
                            acc["round_p50_ms"].append(percentile([v * 1000 for v in got["latencies"]], 50))
                            acc["cpu_s"] += cpu
                            acc["client_cpu_s"] += got["client_cpu_s"]
                            acc["ok"] += len(got["latencies"])
                            acc["wall_s"] += got["wall_s"]
                            acc["unfinished"] += got["unfinished"]
                        console.print(f"c={level} {mode} round {number + 1}/{rounds}: " + ", ".join(
                            f"{n} p50 {cell[n]['round_p50_ms'][-1]:.2f} ms" for n in targets))
            measured_targets, table, goals, errors_total = summarize(raw, levels)
            if profile or (profile is None and not all(g["met"] for g in goals)):
                console.print("[yellow]profiling the releasehub worker with py-spy (an extra c=1 pass)...[/yellow]")
                try:
                    profile_summary = profile_gateway(hub.proc, rh_base, targets["releasehub"][1], tmp)
                except Exception as exc:  # noqa: BLE001 - a diagnosis, not the measurement
                    profile_summary = {"error": f"{type(exc).__name__}: {exc}"}
            litellm_info["log_tail"] = ((tmp / "litellm.log").read_text(errors="replace")[-1500:]
                                        if (tmp / "litellm.log").exists() else "")
            if nginx_proc is not None:
                nginx_info["log_tail"] = _nginx_log(tmp)
    finally:
        stop_group(nginx_proc)
        stop_group(litellm_proc)
        stop_group(engine_proc)
        if keep:
            console.print(f"[yellow]kept {tmp}[/yellow]")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    versions = _pkg_versions(PYTHON, ("httpx", "granian", "fastapi"))
    if LITELLM_VENV.exists():
        litellm_info["versions"] = _pkg_versions(str(LITELLM_VENV / "bin" / "python"),
                                                 ("litellm", "uvicorn", "uvloop", "httptools", "fastapi",
                                                  "starlette", "httpx", "aiohttp", "openai"))
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "gateway",
        "title": "OpenAI gateway: added latency over the engine, vs LiteLLM's proxy",
        "unit": "ms",
        "levels": list(levels),
        "modes": list(MODES),
        "rounds": rounds,
        "requests": requests,
        "requests_c1": requests_c1,
        "targets": measured_targets,
        "table": table,
        "goals": goals,
        "met": all(g["met"] for g in goals) and errors_total == 0,
        "errors_total": errors_total,
        "goal_p50_c1_ms": GOAL_P50_C1_MS,
        "goal_vs_litellm": GOAL_VS_LITELLM,
        "litellm_error": litellm_error,
        "litellm": {**litellm_info, "pinned": LITELLM_VERSION, "rpm": RPM_LIMIT,
                    "config": "master key; model rpm enforced by router pre-call check "
                              "enforce_model_rate_limits; no database; uvicorn access log off; 1 worker"},
        "nginx_error": nginx_error,
        "nginx": {**nginx_info, "config": NGINX_SETUP} if with_nginx else None,
        "rpm_limit": RPM_LIMIT,
        "nproc": os.cpu_count(),
        "probes": probes,
        "profile": profile_summary,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        "client_pool": CLIENT_POOL,
        "versions": versions,
        "cpu_busy_before": quiet,
        "foreign_cores": foreign,
        "retried": retried,
    }
    _print(result)
    return result


def _print(res: dict) -> None:
    for mode in res["modes"]:
        rows = []
        for level in res["levels"]:
            row = res["table"][mode][str(level)]
            for name in res["targets"]:
                r = row[name]
                rows.append([str(level), LABELS[name], f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                             "" if name == "engine" else f"{r['overhead_p50']:+.2f}",
                             "" if name == "engine" else f"{r['overhead_p99']:+.2f}",
                             f"{r['cpu_ms_per_request']:.2f}", f"{r['rps']:,.0f}", str(r["n"]),
                             str(r["errors"] + r["unfinished"])])
            if row.get("ratio_p50") is not None:
                rows.append([str(level), "ratio releasehub / LiteLLM overhead", "", "", f"{row['ratio_p50']:.3f}",
                             f"{row['ratio_p99']:.3f}" if row.get("ratio_p99") is not None else "", "", "", "", ""])
        title = f"{mode} ({'time to first token' if mode == 'streaming' else 'whole response'}), ms"
        print_table(title, ["c", "target", "p50", "p99", "+p50", "+p99", "server CPU ms/req", "req/s", "n", "errors"],
                    rows)
    print_table("goals", ["mode", "c", "what", "value", "goal", "met?"],
                [[g["mode"], g["level"], g["what"],
                  f"{g['value_ms']:.3f} ms" if "value_ms" in g else
                  (f"{g['value']:.3f}x" if g["value"] is not None else "n/a"), g["goal"],
                  "yes" if g["met"] else "NO"] for g in res["goals"]])
    if res["litellm_error"]:
        console.print(f"[red]LiteLLM: {res['litellm_error']}[/red]")
    if res.get("nginx_error"):
        console.print(f"[red]nginx: {res['nginx_error']}[/red]")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per target at c=16 and c=64")
    parser.add_argument("--requests-c1", type=int, default=300, help="timed requests per target at c=1")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    parser.add_argument("--no-nginx", action="store_true", help="leave the nginx reverse-proxy reference out")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--client-pool", choices=("per-worker", "shared"), default=CLIENT_POOL,
                        help="one AsyncClient (1 connection) per worker, or one shared pool per target")
    add_diagnosis_flags(parser, "profile", "profile the releasehub worker with py-spy")
    args = parser.parse_args(argv)
    globals()["CLIENT_POOL"] = args.client_pool
    res = run(args.rounds, args.requests, args.requests_c1, tuple(args.levels), not args.no_litellm, args.keep,
              args.profile, with_nginx=not args.no_nginx)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    main()
