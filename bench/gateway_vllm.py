"""The latency the OpenAI gateway adds in front of a real engine: vLLM's CPU build, called directly and
through `releasehub serve` with the same streaming requests, in one run.

Section 5 (bench/gateway.py) measures the gateway against the protocol engine, which answers in a
couple of milliseconds, so that the gateway's own cost dominates. Here the engine is vLLM serving
the tiny model of `releasehub.demo.build_hosted_model` (random weights, head size 32, a BPE
tokenizer, a chat template), whose tokens take milliseconds each on this machine's CPUs: what an
API user sees added to a real engine's stream.

Set-up, as an operator would: vLLM started as `releasehub.demo.start_vllm` does (the environment of
scripts/engine_env.py; `python -m vllm.entrypoints.openai.api_server ... --max-num-seqs 8
--enforce-eager`), `releasehub serve` (1 granian worker), the same model files committed to
`alice/hosted` with huggingface_hub (so the gateway counts prompts with its tokenizer.json, as in
production), a policy whose tier allows 1,000,000 requests and 100,000,000 tokens a minute (the
limiter runs on every call but never refuses), `releasehub hosted attach` and `releasehub keys
create`.

Load: `c` workers (c = 1 and 8, vLLM's --max-num-seqs) send streaming chat requests back to back,
each worker alternating vLLM direct and the gateway (half the workers start with each, the order
flipped every round), each with its own keep-alive connection to each. So vLLM always runs `c`
streams, and both targets share every moment of a pass: on this shared 2-core machine, passes
run one after the other drifted by more than the gateway's cost (a first version did so). Every
request is the same but for `model` and the key: one user message, `max_tokens` 128 with vLLM's
`ignore_eos` (every stream has 128 tokens), `stream_options.include_usage` (the gateway asks for
it anyway). Time to first token: from sending to the first SSE event that carries a generated
token (a delta with content and no role); to the last: to `data: [DONE]`. Each stream must be
200, end with [DONE] and report a usage of 128 completion tokens, else it counts as an error
(vLLM merges the tokens of several steps into one event when its reader lags, so events are not
tokens). Per level: 3 rounds, each an untimed warm-up stream per worker and target, then its
timed streams per target (20 at c=1, 48 at c=8). p50/p99 over the timed streams of each target;
added = gateway - direct at the same percentile.

    .venv/bin/python bench/gateway_vllm.py [--rounds 3] [--requests-c1 20] [--requests-c8 48] [--write-doc]
    .venv/bin/python bench/gateway_vllm.py --from-results   # the section again from the last run's JSON

`--write-doc` replaces (or adds, after section 5) this benchmark's own section of docs/benchmarks.md
and leaves every other section as it is; the raw figures go to bench/results/gateway_vllm.json
(gitignored). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RELEASEHUB, ROOT, ForeignLoad, _pids_ticks, bench_tmpdir, code_fingerprint, console, group_pids, machine_info,
    print_table, releasehub_server, wait_for_quiet,
)

HEADING = "## 5b. Gateway in front of vLLM"
AFTER = "## 5."  # the section this one stands beside
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results" / "gateway_vllm.json"
REPO_ID = "alice/hosted"
ENGINE_MODEL = "tiny"
MAX_TOKENS = 128
PROMPT = "Tell the release server's story, token by token, for the benchmark."
LEVELS = (1, 8)
POLICY = {"api": {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000}}
REQUEST_TIMEOUT_S = 120.0
MAX_FOREIGN = 0.3  # cores of other work during a round above which it is run again...
TRIES = 3          # ... at most this many times, the least disturbed one kept
TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _cli(args: list[str], env: dict[str, str]) -> str:
    import subprocess

    done = subprocess.run([RELEASEHUB, *args], capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"releasehub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def setup_gateway(hub: Any, model_dir: Path, engine_url: str, tmp: Path) -> str:
    """The hosted repo holding the model's files, attached to vLLM; returns an API key."""
    import os

    from huggingface_hub import HfApi

    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1"}
    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo(REPO_ID)
    api.upload_folder(folder_path=str(model_dir), repo_id=REPO_ID, commit_message="the tiny model")
    policy = tmp / "policy.json"
    policy.write_text(json.dumps(POLICY))
    _cli(["policy", "set", REPO_ID, str(policy)], env)
    _cli(["hosted", "attach", REPO_ID, "--backend", f"{engine_url}/v1", "--model", ENGINE_MODEL], env)
    return _cli(["keys", "create", "alice", "--repo", REPO_ID, "--tier", "default"], env).strip().splitlines()[-1]


def _body(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS,
                       "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}).encode()


async def _one(client: httpx.AsyncClient, url: str, body: bytes) -> tuple[float, float] | str:
    """(time to first token, time to [DONE]) in seconds, or what went wrong."""
    start = time.perf_counter()
    first: float | None = None
    tokens, done, buffer = 0, False, b""
    try:
        async with client.stream("POST", url, content=body) as answer:
            if answer.status_code != 200:
                await answer.aread()
                return f"status {answer.status_code}"
            async for piece in answer.aiter_bytes():
                buffer += piece
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    if event.startswith(b"data: [DONE]"):
                        done = True
                    elif b'"usage":{' in event.replace(b" ", b""):
                        tokens = int((json.loads(event[5:]).get("usage") or {}).get("completion_tokens") or 0)
                    elif first is None and b'"content"' in event and b'"role"' not in event:
                        first = time.perf_counter() - start
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    last = time.perf_counter() - start
    if not done or first is None or tokens != MAX_TOKENS:
        return f"stream without [DONE] or with a usage of {tokens} tokens"
    return first, last


async def _pass(targets: dict[str, tuple[str, dict[str, str], str]], concurrency: int, count: int,
                flip: bool) -> dict[str, dict[str, list[Any]]]:
    """`concurrency` workers, each sending streams back to back and alternating the targets (worker i
    starts with the first target when i is even, the order flipped by `flip`), so that vLLM always
    runs `concurrency` streams and both targets share every moment of the pass; `count` timed
    streams per target after an untimed warm-up stream per worker and target."""
    names = list(targets)
    bodies = {name: _body(model) for name, (_, _, model) in targets.items()}
    clients = [{name: httpx.AsyncClient(headers={**headers, "content-type": "application/json"},
                                        timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(max_connections=1))
                for name, (_, headers, _) in targets.items()} for _ in range(concurrency)]
    got: dict[str, dict[str, list[Any]]] = {name: {"first": [], "last": [], "errors": []} for name in names}
    try:
        for name in names:  # warm-up: opens every connection
            await asyncio.gather(*(_one(c[name], targets[name][0], bodies[name]) for c in clients))
        left = {name: count for name in names}

        async def worker(i: int, own: dict[str, httpx.AsyncClient]) -> None:
            order = names if (i % 2 == 0) != flip else names[::-1]
            turn = 0
            while any(left.values()):
                name = order[turn % len(order)]
                turn += 1
                if left[name] <= 0:
                    continue
                left[name] -= 1
                result = await _one(own[name], targets[name][0], bodies[name])
                if isinstance(result, str):
                    got[name]["errors"].append(result)
                else:
                    got[name]["first"].append(result[0])
                    got[name]["last"].append(result[1])

        await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            for client in c.values():
                await client.aclose()
    return got


def run(rounds: int, counts: dict[int, int], keep: bool = False) -> dict[str, Any]:
    from releasehub.demo import build_hosted_model, engine_env_dir, engine_python, start_vllm

    if engine_python() is None:
        raise SystemExit(f"no vLLM environment at {engine_env_dir()}: build it with `make test-engine` or "
                         "`python3 scripts/engine_env.py`")
    tmp = bench_tmpdir("rh-gateway-vllm-")
    model_dir = tmp / "model"
    build_hosted_model(model_dir)
    engine = start_vllm(model_dir, tmp / "engine", name=ENGINE_MODEL)
    console.print(f"vLLM ready after {engine.started_in_s:.0f} s")
    res: dict[str, Any] = {"vllm_start_s": engine.started_in_s, "levels": {}, "rounds": rounds,
                           "max_tokens": MAX_TOKENS, "counts": counts}
    try:
        with releasehub_server(tmp / "hub") as hub:
            key = setup_gateway(hub, model_dir, engine.url, tmp)
            targets = {"direct": (f"{engine.url}/v1/chat/completions", {}, ENGINE_MODEL),
                       "gateway": (f"{hub.url}/v1/chat/completions", {"Authorization": f"Bearer {key}"}, REPO_ID)}
            res["cpu_busy_before"] = wait_for_quiet(max_wait_s=120)
            # vLLM's API server and engine core, the server and its granian worker: their CPU is not "other work"
            engine_pids = group_pids(engine.process)
            hub_pids = group_pids(hub.proc) if hub.proc else []
            pids = engine_pids + hub_pids
            retried = 0
            for level in LEVELS:
                got: dict[str, dict[str, list[Any]]] = {t: {"first": [], "last": [], "errors": []} for t in targets}
                foreign: list[float] = []
                per_round: dict[str, list[list[float]]] = {t: [] for t in targets}
                cpu: list[dict[str, float]] = []
                for r in range(rounds):
                    best: tuple[float, dict[str, dict[str, list[Any]]]] | None = None
                    for attempt in range(TRIES):  # a round that shared the CPUs with other work is run again
                        ticks = (_pids_ticks(hub_pids), _pids_ticks(engine_pids))
                        with ForeignLoad(pids) as load:
                            out = asyncio.run(_pass(targets, level, counts[level], flip=r % 2 == 1))
                        streams = counts[level] + level  # per target, with the warm-ups
                        out["cpu_ms"] = {  # type: ignore[assignment]
                            "gateway": (_pids_ticks(hub_pids) - ticks[0]) / TICK * 1000 / streams,
                            "vllm": (_pids_ticks(engine_pids) - ticks[1]) / TICK * 1000 / (2 * streams)}
                        if best is None or load.cores < best[0]:
                            best = (load.cores, out)
                        if load.cores <= MAX_FOREIGN:
                            break
                        console.print(f"[yellow]other work used {load.cores:.2f} cores; waiting, then again[/yellow]")
                        wait_for_quiet(max_wait_s=90)
                    retried += attempt
                    cores, out = best
                    foreign.append(cores)
                    cpu.append(out.pop("cpu_ms"))  # type: ignore[arg-type]
                    for name in targets:
                        for field in ("first", "last", "errors"):
                            got[name][field] += out[name][field]
                        per_round[name].append([percentile(out[name]["first"], 50) * 1000,
                                                percentile(out[name]["last"], 50) * 1000])
                        errors = out[name]["errors"]
                        why = f" ({', '.join(sorted(set(errors)))})" if errors else ""
                        console.print(f"c={level} round {r + 1} {name}: p50 first "
                                      f"{per_round[name][-1][0]:.1f} ms, last {per_round[name][-1][1]:.1f} ms, "
                                      f"errors {len(errors)}{why}; other work {cores:.2f} cores")
                res["levels"][str(level)] = {"raw": got, "foreign_cores": foreign, "per_round": per_round,
                                             "cpu_ms": cpu}
            res["rounds_repeated"] = retried
    finally:
        engine.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def summarize(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for level, data in res["levels"].items():
        row: dict[str, Any] = {"c": int(level)}
        for name in ("direct", "gateway"):
            for field in ("first", "last"):
                values = data["raw"][name][field]
                row[f"{name}_{field}_p50"] = percentile(values, 50) * 1000
                row[f"{name}_{field}_p99"] = percentile(values, 99) * 1000
            row[f"{name}_n"] = len(data["raw"][name]["first"])
            row[f"{name}_errors"] = len(data["raw"][name]["errors"])
        for field in ("first", "last"):
            for q in ("p50", "p99"):
                row[f"added_{field}_{q}"] = row[f"gateway_{field}_{q}"] - row[f"direct_{field}_{q}"]
        row["foreign_max"] = max(data["foreign_cores"])
        rows.append(row)
    return rows


def _ms(value: float, sign: bool = False) -> str:
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def section(res: dict[str, Any], info: dict[str, str], started: str, argv: list[str]) -> list[str]:
    rows = summarize(res)
    counts = res["counts"]
    lines = [
        f"{HEADING}: what the gateway adds to a real engine's stream",
        "",
        f"*Run on its own (`{' '.join(['.venv/bin/python', 'bench/gateway_vllm.py', *argv])}`) on {started}, code "
        f"`{res['code']['before']}`{'' if res['code']['before'] == res['code']['after'] else ' → ' + res['code']['after']}"
        f"; {info['nproc']} CPUs ({info['cpu']}). `bench/run_all.py` does not run it, and rewrites this document "
        "without it: `bench/gateway_vllm.py --from-results` puts this section back from "
        "bench/results/gateway_vllm.json without measuring again.*",
        "",
        "**What**: the latency the gateway adds over calling vLLM directly, with the same streaming chat requests "
        "in one run, to the first token and to the last, p50 and p99, at 1 and 8 concurrent streams. Section 5 "
        "measures the gateway's own cost against an engine that answers in about 2 ms; here the engine is a real "
        "one, whose tokens take milliseconds each.",
        "",
        f"**How** (`bench/gateway_vllm.py`): vLLM {res.get('vllm_version', '0.32.0')} (CPU build, the environment "
        "of `scripts/engine_env.py`) serving `releasehub.demo.build_hosted_model`'s tiny Llama (random weights, "
        f"head size 32, {MAX_TOKENS} tokens a stream with `ignore_eos`), ready after {res['vllm_start_s']:.0f} s; "
        "`releasehub serve` (1 granian worker) with the same files committed to `alice/hosted` (so the gateway "
        "counts each prompt with the repo's tokenizer.json, as it does in production), a tier of 1,000,000 "
        "requests and 100,000,000 tokens a minute (the limiter runs, never refuses), `releasehub hosted attach` "
        "and a key. `c` workers send streams back to back, each alternating vLLM direct and the gateway (half "
        "of them starting with each, flipped every round), so that vLLM always runs `c` streams and both "
        "targets share every moment of a pass (passes run one after the other drifted by more than the "
        f"gateway's cost on this shared machine); {res['rounds']} rounds of {counts['1']} timed streams per "
        f"target at c=1 and {counts['8']} at c=8, after an untimed warm-up. "
        "First token: to the first SSE event with a generated token; last: to `data: [DONE]`. Every stream must "
        f"be 200, report {MAX_TOKENS} completion tokens in its usage and end with [DONE].",
        "",
        "| streams | vLLM direct, first token p50 / p99 | through the gateway | **added** | vLLM direct, last token p50 / p99 "
        "| through the gateway | **added** |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['c']} | {_ms(row['direct_first_p50'])} / {_ms(row['direct_first_p99'])} "
            f"| {_ms(row['gateway_first_p50'])} / {_ms(row['gateway_first_p99'])} "
            f"| **{_ms(row['added_first_p50'], True)}** / {_ms(row['added_first_p99'], True)} "
            f"| {_ms(row['direct_last_p50'])} / {_ms(row['direct_last_p99'])} "
            f"| {_ms(row['gateway_last_p50'])} / {_ms(row['gateway_last_p99'])} "
            f"| **{_ms(row['added_last_p50'], True)}** / {_ms(row['added_last_p99'], True)} |")
    lines += ["", "| p50 of each round (first token; last token), ms | vLLM direct | through the gateway |",
              "|---|---|---|"]
    for level, data in res["levels"].items():
        rounds = data.get("per_round", {})
        if rounds:
            cell = {name: "; ".join(f"{a:.1f}, {b:.1f}" for a, b in rounds[name]) for name in rounds}
            lines.append(f"| c={level} | {cell['direct']} | {cell['gateway']} |")
    cpu_rows = []
    for level, data in res["levels"].items():
        if data.get("cpu_ms"):
            gw = sorted(c["gateway"] for c in data["cpu_ms"])[len(data["cpu_ms"]) // 2]
            engine = sorted(c["vllm"] for c in data["cpu_ms"])[len(data["cpu_ms"]) // 2]
            cpu_rows.append(f"| c={level} | {engine:.1f} | {gw:.1f} |")
    if cpu_rows:
        lines += ["", f"| CPU time per stream of {MAX_TOKENS} tokens (median of the rounds), ms | vLLM's processes "
                      "(every stream) | the gateway's server (its streams) |", "|---|---|---|", *cpu_rows]
    errors = sum(row["direct_errors"] + row["gateway_errors"] for row in rows)
    samples = ", ".join(f"c={row['c']}: {row['direct_n']} and {row['gateway_n']}" for row in rows)
    foreign = max(row["foreign_max"] for row in rows)
    reading = []
    one = res["levels"].get("1", {})
    if one.get("cpu_ms"):
        row1 = next(row for row in rows if row["c"] == 1)
        engine_cpu = sorted(c["vllm"] for c in one["cpu_ms"])[len(one["cpu_ms"]) // 2]
        gateway_cpu = sorted(c["gateway"] for c in one["cpu_ms"])[len(one["cpu_ms"]) // 2]
        reading = [
            "",
            f"**Reading it.** On these {info['nproc']} cores vLLM's own processes take {engine_cpu:.0f} ms of CPU "
            f"per stream at c=1, whose p50 lasts {row1['direct_last_p50']:.0f} ms (its worker computes on one core, "
            "its engine process polls), and its API server, the gateway and the load client share what is left. "
            "vLLM's API "
            "server then sends the tokens of many steps at once when it gets a core back, which is why its first "
            "token comes close to its last even when it is called directly (a lone stream on an idle machine "
            "gets its first token after about 40 ms, then one every 2-3 ms). The gateway's own cost is its CPU: "
            f"{gateway_cpu:.1f} ms for a stream of {MAX_TOKENS} tokens at c=1, about "
            f"{gateway_cpu / MAX_TOKENS * 1000:.0f} us an event relayed, on top of the per-call part that section 5 "
            "measures (about 2 ms). At c=8 that CPU is taken from vLLM's steps and from the bursts of all eight "
            "streams, so the added latency there measures the contention for two cores more than the gateway's "
            "path; the p50 of each round shows how far it moves from one round to the next.",
        ]
    lines += reading + [
        "",
        f"Milliseconds. Timed streams (direct and gateway): {samples}; errors: **{errors}**. With so few streams "
        "a p99 is close to the slowest one. Machine CPU busy before measuring: "
        f"{res['cpu_busy_before']:.0%}; other work during the kept rounds: at most {foreign:.2f} cores (a round "
        f"with more than {MAX_FOREIGN} cores of other work is run again, {TRIES} tries at most, the least disturbed "
        f"kept; repeated: {res.get('rounds_repeated', 0)}).",
        "",
    ]
    return lines


def write_doc(lines: list[str], doc: Path = DOC) -> None:
    """Replace this section (its heading to the next `## `), or add it after section 5."""
    text = doc.read_text().splitlines()
    start = next((i for i, line in enumerate(text) if line.startswith(HEADING)), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
    else:
        five = next((i for i, line in enumerate(text) if line.startswith(AFTER)), None)
        if five is None:
            start = end = next((i for i, line in enumerate(text) if line == "## Findings"), len(text))
        else:
            start = end = next((i for i in range(five + 1, len(text)) if text[i].startswith("## ")), len(text))
    doc.write_text("\n".join(text[:start] + lines + text[end:]) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-c1", type=int, default=20)
    parser.add_argument("--requests-c8", type=int, default=48)
    parser.add_argument("--write-doc", action="store_true", help="write this section of docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (vLLM's log; debugging)")
    parser.add_argument("--from-results", action="store_true",
                        help="measure nothing: write the section from the last bench/results/gateway_vllm.json")
    args = parser.parse_args(argv)
    if args.from_results:
        saved = json.loads(RESULTS.read_text())
        write_doc(section(saved["result"], saved["machine"], saved["started"], saved["argv"]))
        return dict(saved["result"])
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    before = code_fingerprint()
    res = run(args.rounds, {1: args.requests_c1, 8: args.requests_c8}, keep=args.keep)
    res["counts"] = {str(k): v for k, v in res["counts"].items()}
    res["code"] = {"before": before, "after": code_fingerprint()}
    try:
        import subprocess

        from releasehub.demo import engine_python

        python = engine_python()
        if python is not None:
            res["vllm_version"] = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"],
                                                 capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info = machine_info()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"result": res, "machine": info, "started": started, "argv": argv}, indent=1))
    rows = summarize(res)
    print_table("gateway added latency over vLLM (ms)", ["c", "first p50", "first p99", "last p50", "last p99"],
                [[r["c"], _ms(r["added_first_p50"], True), _ms(r["added_first_p99"], True),
                  _ms(r["added_last_p50"], True), _ms(r["added_last_p99"], True)] for r in rows])
    if args.write_doc:
        write_doc(section(res, info, started, argv))
    return res


if __name__ == "__main__":
    main()
