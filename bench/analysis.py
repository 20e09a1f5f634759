"""Analysis of a 400+ GB repo over HTTP: `releasehub analyze` vs `accelerate estimate-memory`.

The issue's claim: analysing a repo of 400+ GB of safetensors over HTTP reads only the headers.
This benchmark records the bytes fetched against the bytes of weights (goal: under 0.01%) and
the wall time against `accelerate estimate-memory` on the same repo, served by the same server,
in the same run (goal: 10x faster).

The repo
    A replica of Llama 3.1 405B Instruct in BF16, the original release: the real config.json
    (16384 hidden, 126 layers, 128 heads, 8 KV heads, 53248 intermediate, 128256 vocabulary,
    llama3 RoPE scaling, untied embeddings), the real tensor names and shapes, split like the
    release into 191 shards (`model-00001-of-00191.safetensors`, tensors kept whole in model
    order, at most 5 GB a shard) with `model.safetensors.index.json`, `generation_config.json`
    and a README.md card: 405,853,388,800 parameters, 811,706,777,600 bytes of tensor data.
    BF16 rather than the FP8 release because the FP8 one adds fbgemm scale tensors and keeps
    some layers in BF16, so its parameter count would not be the model's, and because the
    size costs nothing here: every shard is a SPARSE file, its safetensors header written and
    the file then `truncate()`d to its full size, so the tensor data is a hole (zeros) and
    takes no disk space (about 4 KiB per shard on disk).

Ingestion (no 811 GB over HTTP)
    The blob store is content-addressed by sha256, so every shard's digest is needed. The
    digests are computed from the files with SEEK_DATA/SEEK_HOLE: the data extents are read and
    the holes are fed to sha256 as zeros from memory (the bytes hashed are exactly the bytes of
    the file, without reading 811 GB of holes through the page cache), two processes in
    parallel, with a progress bar (811.7 GB in about 330 s on this 2-core machine). They are cached in
    `/tmp/rhbench-cache/analysis-digests-<layout key>.json`, keyed by a hash of every shard's
    name, header and size (the content is a pure function of those), so reruns skip hashing.
    Then, before the server starts, the bench opens the data dir with the server's own
    `Services.build()` (same SQLite database, same `LocalBlobStore`) and does what the LFS
    upload route does after receiving and verifying a blob, minus the bytes: it moves each
    sparse file to `store.path_for(sha256)` with `os.replace` (a rename keeps it sparse; no
    byte is copied), read-only like every blob, and records the blob rows with
    `repos.insert_blob_rows`. Once `releasehub serve` runs, everything else goes through the
    HTTP API like any client: `POST /api/repos/create`, the LFS batch API (which must answer
    "already present", no upload action, for every shard: this checks that the server sees
    the blobs) and one NDJSON commit (`POST /api/models/alice/REPO/commit/main`) with an
    `lfsFile` line per shard and the small files inline.

What is measured
    - releasehub: `releasehub analyze alice/REPO --endpoint URL --token T --format json`, a
      subprocess, timed as a whole command (start-up included); its JSON `reading` object gives
      the files, requests and bytes fetched, and the bytes of tensor data; `parameters.total`
      must be 405,853,388,800 exactly.
    - reference: `accelerate estimate-memory alice/REPO --library_name transformers --dtypes
      float16 int8 int4` with HF_ENDPOINT/HF_TOKEN pointing at the same server (it fetches the
      model info and config.json, then builds the model on the meta device), timed as a whole
      command; it must exit 0 and print its table.
    Both run once untimed (warm-up, page cache of the Python packages), then `--runs` rounds
    alternate between them, each with a fresh, empty HF_HOME (no cache between runs for
    either); median, min and max. A run during which other work used more than 0.2 cores is
    repeated (`_common.measured`). A stand-in header reader in this file (`standin_read`:
    httpx, `Range: bytes=0-7` then the header, per shard) is run once as a cross-check of the
    header bytes the CLI parsed (the CLI itself asks for each shard's first bytes in one request); it is not the measured figure.

    .venv/bin/python bench/analysis.py [--runs 5] [--keep] [--standin-only]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import errno
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    process_cpu_s,
    RELEASEHUB, VENV_BIN, bench_tmpdir, code_fingerprint, console, fmt, group_pids, measured, median,
    print_table, releasehub_server, wait_for_quiet,
)

GOAL_RATIO = 10.0           # accelerate wall time / releasehub wall time
GOAL_FETCHED_PCT = 0.01     # bytes fetched / bytes of weights, in percent
EXPECTED_PARAMETERS = 405_853_388_800
REPO_NAME = "Llama-3.1-405B-Instruct"
MAX_SHARD_BYTES = 5_000_000_000  # transformers' "5GB" shard limit: 191 shards, as in the release
CACHE_DIR = Path("/tmp/rhbench-cache")
ACCELERATE = str(VENV_BIN / "accelerate") if (VENV_BIN / "accelerate").exists() else "accelerate"
COMMAND_TIMEOUT_S = 600
CATALOGUE_ENTRY = "llama-3.1-405b-instruct"  # releasehub's built-in reference entry for this model
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}

# config.json of meta-llama/Llama-3.1-405B-Instruct (the BF16 release).
LLAMA_31_405B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "hidden_act": "silu",
    "hidden_size": 16384,
    "initializer_range": 0.02,
    "intermediate_size": 53248,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 128,
    "num_hidden_layers": 126,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.42.3",
    "use_cache": True,
    "vocab_size": 128256,
}

GENERATION_CONFIG = {
    "bos_token_id": 128000,
    "do_sample": True,
    "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6,
    "top_p": 0.9,
    "transformers_version": "4.42.3",
}

CARD = """\
---
license: llama3.1
language: [en, de, fr, it, pt, hi, es, th]
library_name: transformers
pipeline_tag: text-generation
base_model: meta-llama/Llama-3.1-405B
tags: [llama, llama-3, meta, pytorch, benchmark-replica]
---

# Llama 3.1 405B Instruct (benchmark replica)

A synthetic repository made by releasehub's `bench/analysis.py`. It has the configuration, the
tensor names and shapes and the shard layout of Llama 3.1 405B Instruct in BF16 (405.9 billion
parameters in 191 safetensors shards), but every tensor holds zeros: the shards are sparse
files, so only their headers take disk space. It exists to measure how much of a repository
this size an analysis has to read.
"""


# ---------------------------------------------------------------- the layout


def llama_tensors(config: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """(name, shape) of every tensor of a LlamaForCausalLM, in state_dict order."""
    hidden = config["hidden_size"]
    inter = config["intermediate_size"]
    vocab = config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    q = config["num_attention_heads"] * head_dim
    tensors: list[tuple[str, list[int]]] = [("model.embed_tokens.weight", [vocab, hidden])]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        tensors += [
            (p + "self_attn.q_proj.weight", [q, hidden]),
            (p + "self_attn.k_proj.weight", [kv, hidden]),
            (p + "self_attn.v_proj.weight", [kv, hidden]),
            (p + "self_attn.o_proj.weight", [hidden, q]),
            (p + "mlp.gate_proj.weight", [inter, hidden]),
            (p + "mlp.up_proj.weight", [inter, hidden]),
            (p + "mlp.down_proj.weight", [hidden, inter]),
            (p + "input_layernorm.weight", [hidden]),
            (p + "post_attention_layernorm.weight", [hidden]),
        ]
    tensors.append(("model.norm.weight", [hidden]))
    if not config.get("tie_word_embeddings", False):
        tensors.append(("lm_head.weight", [vocab, hidden]))
    return tensors


def safetensors_header(tensors: list[tuple[str, list[int]]], dtype: str) -> tuple[bytes, int]:
    """(the 8-byte length + JSON header, padded to 8 bytes as safetensors writes it; data bytes).

    Entries are sorted by name and the data laid out in that order, offsets relative to the
    start of the data."""
    entries: dict[str, Any] = {}
    offset = 0
    for name, shape in sorted(tensors):
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    entries["__metadata__"] = {"format": "pt"}
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


@dataclass(frozen=True)
class Shard:
    filename: str
    header: bytes      # including the 8-byte length prefix
    size: int          # the whole file
    data_bytes: int
    tensors: tuple[str, ...]
    parameters: int


@dataclass(frozen=True)
class Layout:
    dtype: str
    shards: tuple[Shard, ...]
    small_files: dict[str, bytes]   # config.json, index, card... (committed inline)

    @property
    def key(self) -> str:
        """What the shards' content is a function of: names, headers and sizes."""
        digest = hashlib.sha256()
        for shard in self.shards:
            digest.update(shard.filename.encode() + b"\0" + shard.header + str(shard.size).encode() + b"\n")
        return digest.hexdigest()[:16]

    @property
    def stored_bytes(self) -> int:
        return sum(s.data_bytes for s in self.shards)

    @property
    def total_size(self) -> int:
        return sum(s.size for s in self.shards)

    @property
    def parameters(self) -> int:
        return sum(s.parameters for s in self.shards)


def build_layout(config: dict[str, Any] = LLAMA_31_405B_CONFIG, dtype: str = "BF16",
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> Layout:
    tensors = llama_tensors(config)
    groups: list[list[tuple[str, list[int]]]] = [[]]
    held = 0
    for name, shape in tensors:  # whole tensors, model order, a new shard when the next would overflow
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if groups[-1] and held + nbytes > max_shard_bytes:
            groups.append([])
            held = 0
        groups[-1].append((name, shape))
        held += nbytes
    count = len(groups)
    shards = []
    weight_map: dict[str, str] = {}
    for number, group in enumerate(groups, start=1):
        filename = f"model-{number:05d}-of-{count:05d}.safetensors"
        header, data_bytes = safetensors_header(group, dtype)
        shards.append(Shard(filename, header, len(header) + data_bytes, data_bytes,
                            tuple(n for n, _ in group), sum(math.prod(s) for _, s in group)))
        weight_map.update({name: filename for name, _ in group})
    total = sum(s.data_bytes for s in shards)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    small = {
        "config.json": (json.dumps(config, indent=2) + "\n").encode(),
        "generation_config.json": (json.dumps(GENERATION_CONFIG, indent=2) + "\n").encode(),
        "model.safetensors.index.json": (json.dumps(index, indent=2) + "\n").encode(),
        "README.md": CARD.encode(),
    }
    return Layout(dtype, tuple(shards), small)


def write_repo(folder: Path, layout: Layout) -> None:
    """The small files, and every shard as header + hole up to its full size."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in layout.small_files.items():
        (folder / name).write_bytes(content)
    for shard in layout.shards:
        with open(folder / shard.filename, "wb") as handle:
            handle.write(shard.header)
            handle.truncate(shard.size)


def disk_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# ---------------------------------------------------------------- hashing sparse files

_ZEROS = bytes(16 * 1024 * 1024)


def sparse_sha256(path: str) -> str:
    """sha256 of the file's bytes: data extents are read, holes are hashed as zeros from memory."""
    digest = hashlib.sha256()
    zeros = memoryview(_ZEROS)
    with open(path, "rb", buffering=0) as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                data = size  # only a hole is left
            hole_len = data - pos
            while hole_len > 0:
                n = min(hole_len, len(zeros))
                digest.update(zeros[:n])
                hole_len -= n
            if data >= size:
                break
            end = os.lseek(fd, data, os.SEEK_HOLE)
            os.lseek(fd, data, os.SEEK_SET)
            left = end - data
            while left > 0:
                block = handle.read(min(left, 8 * 1024 * 1024))
                if not block:
                    raise RuntimeError(f"{path} shrank while it was hashed")
                digest.update(block)
                left -= len(block)
            pos = end
    return digest.hexdigest()


def _hash_job(path: str) -> tuple[str, str]:
    return Path(path).name, sparse_sha256(path)


def shard_digests(folder: Path, layout: Layout, workers: int | None = None) -> tuple[dict[str, str], dict]:
    """{filename: sha256} for every shard, from the cache when this layout was hashed before."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = CACHE_DIR / f"analysis-digests-{layout.key}.json"
    names = [s.filename for s in layout.shards]
    if cache.exists():
        with open(cache) as handle:
            cached = json.load(handle)
        if sorted(cached) == sorted(names):
            console.print(f"shard digests from the cache {cache}")
            return cached, {"cached": True, "seconds": 0.0, "cache": str(cache)}
    workers = workers or min(2, os.cpu_count() or 1)
    sizes = {s.filename: s.size for s in layout.shards}
    digests: dict[str, str] = {}
    start = time.perf_counter()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeRemainingColumn(), console=console)
    with progress, concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(f"sha256 of {len(names)} sparse shards ({workers} processes)",
                                 total=layout.total_size)
        jobs = [pool.submit(_hash_job, str(folder / name)) for name in names]
        for job in concurrent.futures.as_completed(jobs):
            name, sha = job.result()
            digests[name] = sha
            progress.advance(task, sizes[name])
    seconds = time.perf_counter() - start
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True))
    os.replace(tmp, cache)
    console.print(f"hashed {layout.total_size / 1e9:,.1f} GB in {seconds:.0f} s "
                  f"({layout.total_size / 1e9 / seconds:,.2f} GB/s); cached in {cache}")
    return digests, {"cached": False, "seconds": seconds, "cache": str(cache)}


# ---------------------------------------------------------------- ingestion


def publish_blobs(data_dir: Path, folder: Path, layout: Layout, digests: dict[str, str]) -> dict:
    """Move the sparse shards into the server's blob store and record them, in-process, with the
    server's own services (the server is not running yet)."""
    from releasehub.repos import service as repos
    from releasehub.services import Services
    from releasehub.settings import Settings

    services = Services.build(Settings(data_dir=data_dir))
    try:
        store = services.store
        rows = []
        for shard in layout.shards:
            sha = digests[shard.filename]
            source = folder / shard.filename
            target = store.path_for(sha)  # type: ignore[attr-defined]
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(source, 0o444)
            os.replace(source, target)  # a rename: the file stays sparse, nothing is copied
            if not store.exists(sha) or target.stat().st_size != shard.size:
                raise RuntimeError(f"{shard.filename} did not land in the blob store as {target}")
            rows.append((sha, shard.size))
        with services.db.session() as session:
            repos.insert_blob_rows(session, rows)
        blobs = [store.path_for(digests[s.filename]) for s in layout.shards]  # type: ignore[attr-defined]
        return {"apparent_bytes": sum(p.stat().st_size for p in blobs), "disk_bytes": sum(disk_bytes(p) for p in blobs)}
    finally:
        services.close()


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if not response.is_success:
        raise RuntimeError(f"{what} failed: HTTP {response.status_code} {response.text[:500]}")
    return response


def commit_repo(url: str, token: str, repo_id: str, layout: Layout, digests: dict[str, str]) -> dict:
    """Create the repo and commit every file through the server's HTTP API; no shard byte travels."""
    import base64

    namespace, name = repo_id.split("/")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        _check(client.post("/api/repos/create", json={"name": name, "organization": namespace, "type": "model",
                                                      "visibility": "public"}), "creating the repo")
        objects = [{"oid": digests[s.filename], "size": s.size} for s in layout.shards]
        batch = _check(client.post(
            f"/{repo_id}.git/info/lfs/objects/batch",
            json={"operation": "upload", "transfers": ["basic"], "objects": objects, "hash_algo": "sha256"},
            headers={"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"},
        ), "LFS batch").json()
        to_upload = [o["oid"] for o in batch["objects"] if o.get("actions") or o.get("error")]
        if to_upload:
            raise RuntimeError(f"the LFS batch API wants {len(to_upload)} of {len(objects)} shards uploaded; "
                               f"the ingestion did not register them: {batch['objects'][:2]}")
        lines: list[dict[str, Any]] = [{"key": "header", "value": {
            "summary": "Llama 3.1 405B Instruct replica (sparse shards, bench/analysis.py)", "description": ""}}]
        for path, content in layout.small_files.items():
            lines.append({"key": "file", "value": {"path": path, "encoding": "base64",
                                                   "content": base64.b64encode(content).decode()}})
        for shard in layout.shards:
            lines.append({"key": "lfsFile", "value": {"path": shard.filename, "algo": "sha256",
                                                      "oid": digests[shard.filename], "size": shard.size}})
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        answer = _check(client.post(f"/api/models/{repo_id}/commit/main", content=body,
                                    headers={"Content-Type": "application/x-ndjson"}), "the commit").json()
        info = _check(client.get(f"/api/models/{repo_id}"), "model info").json()
    listed = {s["rfilename"] for s in info.get("siblings", [])}
    missing = [s.filename for s in layout.shards if s.filename not in listed]
    if missing:
        raise RuntimeError(f"{len(missing)} shards missing from the model info after the commit")
    return {"commit": answer.get("commitOid"), "files": len(listed), "lfs_already_present": len(objects)}


# ---------------------------------------------------------------- the stand-in reader (cross-check)


def standin_read(url: str, token: str, repo_id: str) -> dict:
    """Read every safetensors header of the repo with two ranged GETs per shard (8 bytes, then the
    header) and count requests and body bytes. A cross-check of the CLI's figures, not measured."""
    headers = {"Authorization": f"Bearer {token}"}
    requests = fetched = files = parameters = stored = 0
    start = time.perf_counter()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        info = _check(client.get(f"/api/models/{repo_id}"), "model info").json()
        names = sorted(s["rfilename"] for s in info["siblings"] if s["rfilename"].endswith(".safetensors"))

        def ranged(path: str, first: int, last: int) -> bytes:
            nonlocal requests, fetched
            response = client.get(f"/{repo_id}/resolve/main/{path}",
                                  headers={"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"})
            if response.status_code != 206:
                raise RuntimeError(f"range read of {path} answered {response.status_code}, not 206")
            requests += 1
            fetched += len(response.content)
            return response.content

        for path in names:
            (length,) = struct.unpack("<Q", ranged(path, 0, 7))
            header = json.loads(ranged(path, 8, 8 + length - 1))
            files += 1
            for key, entry in header.items():
                if key == "__metadata__":
                    continue
                parameters += math.prod(entry["shape"])
                stored += entry["data_offsets"][1] - entry["data_offsets"][0]
    return {"files": files, "requests": requests, "bytes_fetched": fetched, "stored_bytes": stored,
            "parameters": parameters, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------- the two commands


def analyze_available() -> bool:
    try:
        result = subprocess.run([RELEASEHUB, "analyze", "--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update({"HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    env.update(extra)
    return env


def _fresh_home(tmp: Path, tag: str) -> Path:
    home = tmp / "hf-home" / tag
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def run_analyze(url: str, token: str, repo_id: str, home: Path) -> tuple[float, dict]:
    cmd = [RELEASEHUB, "analyze", repo_id, "--endpoint", url, "--token", token, "--format", "json"]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=_clean_env(home))
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"releasehub analyze exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-3000:]}")
    text = result.stdout
    try:
        report = json.loads(text)
    except ValueError:
        report = json.loads(text[text.index("{"):])  # anything printed before the JSON
    return elapsed, report


_ACC_ROW = re.compile(r"│\s*(float32|float16|int8|int4)\s*│\s*([\d.]+ \w+)\s*│\s*([\d.]+ \w+)\s*│\s*([^│]+?)\s*│")
_UNITS = {"bytes": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5}


def _acc_bytes(text: str) -> float | None:
    value, _, unit = text.strip().partition(" ")
    try:
        return float(value) * _UNITS[unit]
    except (ValueError, KeyError):
        return None


def run_accelerate(url: str, token: str, repo_id: str, home: Path) -> tuple[float, dict]:
    cmd = [ACCELERATE, "estimate-memory", repo_id, "--library_name", "transformers",
           "--dtypes", "float16", "int8", "int4"]
    env = _clean_env(home, HF_ENDPOINT=url, HF_TOKEN=token)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"accelerate estimate-memory exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-3000:]}")
    rows = {m.group(1): {"largest_layer": m.group(2), "total_size": m.group(3), "training_adam": m.group(4),
                         "total_bytes": _acc_bytes(m.group(3))}
            for m in _ACC_ROW.finditer(result.stdout)}
    if set(rows) != {"float16", "int8", "int4"}:
        raise RuntimeError(f"could not parse the table of accelerate estimate-memory:\n{result.stdout[-3000:]}")
    return elapsed, {"rows": rows, "table": result.stdout.strip()[-2000:]}


# ---------------------------------------------------------------- the benchmark


def _startup_s(cmd: list[str], runs: int = 3) -> float | None:
    """Median wall time of a command that only starts and prints its help: the start-up floor."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, timeout=COMMAND_TIMEOUT_S)
        if result.returncode != 0:
            return None
        times.append(time.perf_counter() - start)
    return median(times)


_PRECISION_KEYS = {"float16": ("fp16", "float16", "bf16"), "int8": ("int8",), "int4": ("int4",)}


def weights_for(weights_bytes: Any, dtype: str) -> int | None:
    """releasehub's weight bytes for one of accelerate's dtypes (`resourcing.weights_bytes` is a
    dict by precision, or one number)."""
    if isinstance(weights_bytes, int):
        return weights_bytes if dtype == "float16" else None
    if isinstance(weights_bytes, dict):
        for key in _PRECISION_KEYS[dtype]:
            if isinstance(weights_bytes.get(key), int):
                return int(weights_bytes[key])
    return None


def _weights_text(weights_bytes: Any, dtype: str) -> str:
    value = weights_for(weights_bytes, dtype)
    return f"{value:,} bytes = {value / 1e9:,.1f} GB" if value is not None else "?"


def _meta_model_parameters(config: dict[str, Any]) -> dict[str, int]:
    """What accelerate counts: `AutoModel` builds the base model (no LM head)."""
    tensors = llama_tensors(config)
    total = sum(math.prod(s) for _, s in tensors)
    head = sum(math.prod(s) for n, s in tensors if n == "lm_head.weight")
    return {"with_head": total, "without_head": total - head}


def run(runs: int = 5, keep: bool = False, standin_only: bool = False) -> dict:
    code_before = code_fingerprint()
    have_cli = analyze_available()
    if not have_cli and not standin_only:
        raise RuntimeError("`releasehub analyze` does not exist yet (`releasehub analyze --help` fails); "
                           "run with --standin-only to exercise the ingestion and the server side.")
    layout = build_layout()
    if layout.parameters != EXPECTED_PARAMETERS:
        raise RuntimeError(f"layout has {layout.parameters:,} parameters, not {EXPECTED_PARAMETERS:,}")
    repo_id = f"alice/{REPO_NAME}"
    tmp = bench_tmpdir("analysis")
    timings: dict[str, float] = {}
    try:
        folder = tmp / "repo"
        t0 = time.perf_counter()
        write_repo(folder, layout)
        timings["write_sparse_s"] = time.perf_counter() - t0
        console.print(f"wrote {len(layout.shards)} sparse shards, {layout.total_size / 1e9:,.1f} GB apparent, "
                      f"{sum(disk_bytes(folder / s.filename) for s in layout.shards) / 1e6:,.2f} MB on disk")
        digests, hashing = shard_digests(folder, layout)
        data_dir = tmp / "data"
        t0 = time.perf_counter()
        store_info = publish_blobs(data_dir, folder, layout, digests)
        timings["publish_s"] = time.perf_counter() - t0
        with releasehub_server(data_dir) as hub:
            t0 = time.perf_counter()
            committed = commit_repo(hub.url, hub.token, repo_id, layout, digests)
            timings["commit_s"] = time.perf_counter() - t0
            console.print(f"committed {committed['files']} files to {repo_id} (commit {committed['commit']})")

            standin = standin_read(hub.url, hub.token, repo_id)
            if standin["parameters"] != EXPECTED_PARAMETERS or standin["stored_bytes"] != layout.stored_bytes:
                raise RuntimeError(f"stand-in read {standin['parameters']:,} parameters / "
                                   f"{standin['stored_bytes']:,} bytes, expected {EXPECTED_PARAMETERS:,} / "
                                   f"{layout.stored_bytes:,}")
            print_table("stand-in header reader (cross-check)", ["files", "requests", "bytes fetched",
                                                                 "stored bytes", "% fetched", "s"],
                        [[standin["files"], standin["requests"], f"{standin['bytes_fetched']:,}",
                          f"{standin['stored_bytes']:,}",
                          f"{100 * standin['bytes_fetched'] / standin['stored_bytes']:.6f}",
                          f"{standin['seconds']:.2f}"]])

            hub_pids = group_pids(hub.proc) if hub.proc is not None else []

            def analyze_once(tag: str) -> tuple[float, dict]:
                if standin_only:
                    got = standin_read(hub.url, hub.token, repo_id)
                    return got["seconds"], {"reading": {k: got[k] for k in ("files", "requests", "bytes_fetched",
                                                                            "stored_bytes")},
                                            "parameters": {"total": got["parameters"]}}
                return run_analyze(hub.url, hub.token, repo_id, _fresh_home(tmp, tag))

            def accelerate_once(tag: str) -> tuple[float, dict]:
                return run_accelerate(hub.url, hub.token, repo_id, _fresh_home(tmp, tag))

            console.print("warm-up: one untimed run of each")
            _, report = analyze_once("warm-rh")
            _, acc = accelerate_once("warm-acc")

            quiet = wait_for_quiet()
            rh_runs: list[float] = []
            acc_runs: list[float] = []
            server_cpu: dict[str, list[float]] = {"rh": [], "acc": []}
            foreign: list[float] = []
            retried = 0
            for number in range(runs):
                for fn, sink, tag in ((analyze_once, rh_runs, "rh"), (accelerate_once, acc_runs, "acc")):
                    def once(fn=fn, tag=tag) -> tuple[tuple[float, dict], float]:
                        cpu0 = process_cpu_s(hub_pids)
                        got = fn(f"{tag}-{number}")
                        return got, process_cpu_s(hub_pids) - cpu0

                    sample = measured(once, hub_pids)
                    (elapsed, out), used = sample.value
                    sink.append(elapsed)
                    server_cpu[tag].append(used)
                    foreign.append(sample.foreign)
                    retried += sample.tries - 1
                    if tag == "rh":
                        report = out
                    else:
                        acc = out
                console.print(f"round {number + 1}/{runs}: releasehub analyze {rh_runs[-1]:.2f} s, "
                              f"accelerate estimate-memory {acc_runs[-1]:.2f} s")
            # Floors, for the findings: the commands doing nothing but start (--help), and releasehub
            # analyze on its built-in catalogue entry of the same model (everything but the HTTP reads).
            startup = {"releasehub analyze --help": _startup_s([RELEASEHUB, "analyze", "--help"]),
                       "accelerate estimate-memory --help": _startup_s([ACCELERATE, "estimate-memory", "--help"]),
                       "releasehub analyze (catalogue entry, no HTTP)": _startup_s(
                           [RELEASEHUB, "analyze", CATALOGUE_ENTRY, "--format", "json"])}
    finally:
        if keep:
            console.print(f"[yellow]kept {tmp}[/yellow]")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    reading = report.get("reading") or {}
    fetched = reading.get("bytes_fetched")
    stored = reading.get("stored_bytes")
    fetched_pct = 100.0 * fetched / stored if fetched is not None and stored else None
    param_total = _dig(report, "parameters.total")
    weights_bytes = _dig(report, "resourcing.weights_bytes")
    rh_s, acc_s = median(rh_runs), median(acc_runs)
    ratio = acc_s / rh_s
    counted = _meta_model_parameters(LLAMA_31_405B_CONFIG)
    acc_f16 = acc["rows"]["float16"]["total_bytes"]
    result = {
        "code": {"before": code_before, "after": code_fingerprint()},
        "name": "analysis",
        "title": f"Analysis of a {layout.stored_bytes / 1e9:,.0f} GB safetensors repo over HTTP",
        "unit": "s",
        "lower_is_better": True,
        "standin_only": standin_only,
        "releasehub": rh_s,
        "reference": acc_s,
        "reference_name": "accelerate estimate-memory (same repo, same server)",
        "ratio": ratio,
        "goal": GOAL_RATIO,
        "met": ratio >= GOAL_RATIO,
        "runs": runs,
        "releasehub_runs_s": rh_runs,
        "reference_runs_s": acc_runs,
        "repo": {"id": repo_id, "dtype": layout.dtype, "shards": len(layout.shards),
                 "stored_bytes": layout.stored_bytes, "total_bytes": layout.total_size,
                 "header_bytes": sum(len(s.header) for s in layout.shards),
                 "parameters": layout.parameters, "small_files": sorted(layout.small_files)},
        "reading": reading,
        "fetched_pct": fetched_pct,
        "fetched_goal_pct": GOAL_FETCHED_PCT,
        "fetched_met": fetched_pct is not None and fetched_pct < GOAL_FETCHED_PCT,
        "parameters_total": param_total,
        "parameters_expected": EXPECTED_PARAMETERS,
        "parameters_ok": param_total == EXPECTED_PARAMETERS,
        "weights_bytes": weights_bytes,
        "standin": standin,
        # The stand-in reads exactly the headers; the CLI reads each shard's start in one request
        # (the header and up to 1/200,000 of the shard past it), so compare the header bytes it parsed.
        "bytes_agree": reading.get("header_bytes") == standin["bytes_fetched"],
        "accelerate": acc["rows"],
        "accelerate_table": acc["table"],
        "accelerate_model_parameters": counted,
        "accelerate_float16_bytes_expected": counted["without_head"] * 2,
        "accelerate_float16_matches_meta_model": acc_f16 is not None
        and abs(acc_f16 - counted["without_head"] * 2) / (counted["without_head"] * 2) < 0.001,
        "ingest": {**timings, **store_info, "hash_s": hashing["seconds"], "hash_cached": hashing["cached"],
                   **committed},
        "startup_s": startup,
        "server_cpu_s": {"releasehub": server_cpu["rh"], "reference": server_cpu["acc"]},
        "cpu_busy_before": quiet,
        "foreign_cores": foreign,
        "retried": retried,
    }
    goal_word = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    rows = [
        ["releasehub analyze (s)", fmt(rh_s, 2), fmt(min(rh_runs), 2), fmt(max(rh_runs), 2),
         ", ".join(fmt(v, 2) for v in rh_runs)],
        ["accelerate estimate-memory (s)", fmt(acc_s, 2), fmt(min(acc_runs), 2), fmt(max(acc_runs), 2),
         ", ".join(fmt(v, 2) for v in acc_runs)],
        ["ratio accelerate / releasehub", f"{ratio:.1f}x", "", "",
         f"goal >= {GOAL_RATIO:g}x: {goal_word(result['met'])}"],
    ] + [[f"start-up only: {cmd} (s)", fmt(t, 2) if t is not None else "?", "", "", "median of 3"]
         for cmd, t in startup.items()]
    print_table(result["title"] + (" [STAND-IN, not the CLI]" if standin_only else ""),
                ["", "median", "min", "max", "runs"], rows)
    print_table("bytes read", ["", "value"], [
        ["files read", reading.get("files")],
        ["HTTP requests", reading.get("requests")],
        ["bytes fetched (CLI)", f"{fetched:,}" if fetched is not None else "?"],
        ["header bytes parsed (CLI)", f"{reading.get('header_bytes'):,}"],
        ["header bytes (stand-in cross-check)", f"{standin['bytes_fetched']:,} "
                                                f"({'agrees' if result['bytes_agree'] else 'DIFFERS'})"],
        ["bytes of tensor data", f"{stored:,}" if stored is not None else "?"],
        ["fetched / stored", f"{fetched_pct:.6f}% (goal < {GOAL_FETCHED_PCT}%: "
                             f"{goal_word(result['fetched_met'])})" if fetched_pct is not None else "?"],
        ["parameters.total", f"{param_total:,} ({'exact' if result['parameters_ok'] else 'WRONG'})"
         if isinstance(param_total, int) else repr(param_total)],
    ])
    print_table("weights memory, both tools (accelerate prints GiB as 'GB')",
                ["dtype", "accelerate estimate-memory", "releasehub resourcing.weights_bytes"],
                [[dtype, f"{row['total_size']} = {(row['total_bytes'] or 0) / 1e9:,.1f} GB",
                  _weights_text(weights_bytes, dtype)]
                 for dtype, row in ((d, acc["rows"][d]) for d in ("float16", "int8", "int4"))])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (sparse shards, data dir)")
    parser.add_argument("--standin-only", action="store_true",
                        help="debugging: time the stand-in reader instead of `releasehub analyze`")
    args = parser.parse_args(argv)
    return run(args.runs, args.keep, args.standin_only)


if __name__ == "__main__":
    main()
