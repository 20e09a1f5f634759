"""`make compat`: the installed huggingface_hub's own test suite against a live releasehub server.

What it does, in order:

1. Downloads the sdist of the *installed* huggingface_hub version (cached under .venv/compat/) and
   unpacks it into a temporary directory. The sdist ships tests/ but not tests/conftest.py (setuptools
   only picks up test*.py) nor tests/__init__.py, so the fixtures the tests need (`api`, `repo_factory`, the cache isolation
   and the marker handling) are provided by compat/conftest.py, copied in.
2. Installs the few pytest plugins the client's tests import and the project venv lacks (pytest-mock,
   pytest-timeout, jedi) into .venv/compat/site, put on PYTHONPATH for the run only: the project venv
   is left as it is.
3. Starts `releasehub serve` on a free loopback port with a fresh data dir, and creates the users the
   client's tests expect (testing_constants.py: USER with FULL_NAME, OTHER_USER), each with a write token.
   Test-harness-only step: users and tokens are created in-process against the server's database, the
   way tests/conftest.py does. releasehub tokens are random `rh_...` secrets (stored as sha256) and the
   server accepts nothing else, so the harness does not give users the `hf_...` strings of
   testing_constants.py: it patches the unpacked testing_constants.py to the tokens it created and to
   the live server's endpoint (ENDPOINT_STAGING), and sets HF_ENDPOINT to it. The server is not weakened.
4. Runs pytest on the selected modules, in the sdist directory, with the project venv's python, twice:
   with HF_HUB_DISABLE_XET=1 (LFS uploads) and without it (Xet uploads), each on its own fresh server.
5. Parses the junit XML, prints the figures and writes them into docs/compat.md between the
   `compat:figures` markers (the rest of that doc is kept).

Usage: python compat/run.py [--xet off|on|both] [--modules test_a.py,...] [--no-doc] [-- PYTEST_ARGS]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".venv" / "compat"
DOC = ROOT / "docs" / "compat.md"
PLUGINS = ["pytest-mock==3.17.0", "pytest-timeout==2.4.0", "jedi==0.20.1", "parso==0.8.7"]

# The modules of the client's suite that exercise what a model release server serves: repos, commits,
# uploads (LFS and Xet), downloads, the file system, auth, model cards, the hub mixins and the `hf`
# CLI. The rest of tests/ is offline unit tests of the client (utils, caching, serialization) that
# pass or fail whatever the server does, or Hub-only products (inference, buckets, jobs, webhooks).
MODULES = [
    "test_hf_api.py",
    "test_file_download.py",
    "test_commit_api.py",
    "test_upload_pipeline.py",
    "test_snapshot_download.py",
    "test_hf_file_system.py",
    "test_auth.py",
    "test_lfs.py",
    "test_repocard.py",
    "test_repocard_data.py",
    "test_xet_upload.py",
    "test_xet_download.py",
    "test_hub_mixin.py",
    "test_hub_mixin_pytorch.py",
    "test_cache_layout.py",
    "test_cli.py",
]

# Hub features a model release server does not have, deselected by name (case-insensitive substrings
# of the test, class or module name). The first line is the list; the rest are Hub-only
# products: compute and billing (jobs, hardware), papers, agent skills and CLI extensions, the Hub's
# webhook management API, enterprise orgs and the inference catalogue.
OUT_OF_SCOPE = [
    "dataset", "space", "discussion", "pull_request", "create_pr", "_on_pr", "with_prs", "pr_revision",
    "collection", "inference", "bucket",
    "job", "hardware", "paper", "skill", "extension", "webhook", "enterprise", "volume",
]
MARKERS = "not production"


@dataclass
class Figures:
    mode: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    deselected: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errors

    @property
    def percent(self) -> float:
        return 100.0 * self.passed / self.ran if self.ran else 0.0


def log(msg: str) -> None:
    print(f"[compat] {msg}", flush=True)


def installed_version() -> str:
    return importlib.metadata.version("huggingface_hub")


def sdist(version: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"huggingface_hub-{version}.tar.gz"
    if not path.exists():
        log(f"downloading the huggingface_hub {version} sdist")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                 f"huggingface_hub=={version}", "-d", tmp], check=True,
            )
            (found,) = Path(tmp).glob("huggingface_hub-*.tar.gz")
            found.rename(path)
    return path


def plugins() -> Path:
    site = CACHE / "site"
    stamp = site / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(PLUGINS):
        return site
    log("installing the client tests' pytest plugins into .venv/compat/site")
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *PLUGINS],
                   check=True)
    stamp.write_text("\n".join(PLUGINS))
    return site


def unpack(tarball: Path, dest: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    (tree,) = [p for p in dest.iterdir() if p.is_dir()]
    tests = tree / "tests"
    # Nor tests/__init__.py, which the tests' relative imports (`from .testing_utils import`) need.
    (tests / "__init__.py").touch()
    if not (tests / "conftest.py").exists():
        shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    return tree


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True)
    log_path = data_dir / "server.log"
    cmd = [sys.executable, "-m", "releasehub", "serve", "--port", str(port), "--data-dir", str(data_dir),
           "--public-url", url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "RELEASEHUB_"))}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def read_constants(tests: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (tests / "testing_constants.py").read_text().splitlines():
        match = re.match(r'^([A-Z_]+) = "([^"]*)"', line)
        if match:
            values[match[1]] = match[2]
    return values


def hub_name(name: str) -> str:
    """A releasehub-valid user name for one of the client's: `__DUMMY_HUB_USER__` starts with `_`."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def create_accounts(data_dir: Path, tests: Path, url: str) -> None:
    """Create the client tests' users with write tokens and patch testing_constants.py to them."""
    from releasehub.accounts import service as accounts
    from releasehub.db import Database

    const = read_constants(tests)
    user, other = hub_name(const["USER"]), hub_name(const["OTHER_USER"])
    db = Database(f"sqlite:///{(data_dir / 'releasehub.db').resolve()}")
    try:
        with db.session() as session:
            accounts.create_user(session, user, fullname=const.get("FULL_NAME"))
            accounts.create_user(session, other)
            _, token = accounts.create_token(session, user, name="compat", scope="write")
            _, other_token = accounts.create_token(session, other, name="compat", scope="write")
    finally:
        db.dispose()
    overrides = {
        "USER": user, "TOKEN": token, "OTHER_USER": other, "OTHER_TOKEN": other_token, "ENDPOINT_STAGING": url,
    }
    patch = "\n# make compat: the live releasehub server's users, tokens and endpoint.\n" + "".join(
        f"{name} = {value!r}\n" for name, value in overrides.items()
    )
    with open(tests / "testing_constants.py", "a") as fh:
        fh.write(patch)


def keyword_filter() -> str:
    return " and ".join(f"not {word}" for word in OUT_OF_SCOPE)


def run_mode(mode: str, tarball: Path, site: Path, modules: list[str], args: argparse.Namespace) -> Figures:
    figures = Figures(mode)
    with tempfile.TemporaryDirectory(prefix=f"compat-{mode}-") as tmp:
        work = Path(tmp)
        tree = unpack(tarball, work / "src")
        tests = tree / "tests"
        data_dir = work / "data"
        proc, url = start_server(data_dir)
        try:
            create_accounts(data_dir, tests, url)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
            env.update({
                "HF_ENDPOINT": url, "HF_HOME": str(work / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1", "NO_COLOR": "1",
                "PYTHONPATH": os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            })
            if mode == "no-xet":
                env["HF_HUB_DISABLE_XET"] = "1"
            junit = work / "junit.xml"
            # addopts of the sdist's pyproject (-sv --log-cli-level=INFO --durations=0) flood the
            # output; its -Werror::FutureWarning and --strict-markers are kept.
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rN",
                   "-W", "error::FutureWarning", "--strict-markers", "--timeout", str(args.test_timeout),
                   "-m", MARKERS, "-k", keyword_filter(), f"--junitxml={junit}",
                   *([] if args.workers < 2 else ["-n", str(args.workers)]),
                   *[f"tests/{m}" for m in modules], *args.pytest_args]
            log(f"{mode}: pytest on {len(modules)} modules against {url} (bounded to {args.run_timeout}s)")
            out_path = CACHE / f"last-{mode}.log"
            start = time.monotonic()
            with open(out_path, "wb") as out:
                run = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
                try:
                    run.wait(timeout=args.run_timeout)
                except subprocess.TimeoutExpired:
                    figures.timed_out = True
                    os.killpg(run.pid, signal.SIGTERM)
                    try:
                        run.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(run.pid, signal.SIGKILL)
                        run.wait()
            figures.seconds = time.monotonic() - start
            text = out_path.read_text(errors="replace")
            figures.deselected = deselected(cmd, tree, env)
            if junit.exists():
                parse_junit(junit, figures)
                shutil.copy(junit, CACHE / f"last-{mode}.xml")
            else:
                raise SystemExit(f"{mode}: pytest wrote no junit XML:\n{text[-3000:]}")
            shutil.copy(data_dir / "server.log", CACHE / f"last-{mode}-server.log")
        finally:
            stop(proc)
    return figures


def deselected(cmd: list[str], tree: Path, env: dict[str, str]) -> int:
    """How many tests the filters deselect: xdist's summary does not say, a plain collection does."""
    keep = [a for a in cmd if not a.startswith("--junitxml")]
    if "-n" in keep:
        i = keep.index("-n")
        del keep[i:i + 2]
    out = subprocess.run([*keep, "--collect-only"], cwd=tree, env=env, capture_output=True, text=True)
    match = re.search(r"(\d+) deselected", out.stdout)
    return int(match[1]) if match else 0


def parse_junit(path: Path, figures: Figures) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        nodeid = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            tag = "failure" if "failure" in kinds else "error"
            child = case.find(tag)
            message = " ".join((child.get("message") or "").split()) if child is not None else ""
            figures.failures.append((nodeid, message[:300]))
            if tag == "failure":
                figures.failed += 1
            else:
                figures.errors += 1
        elif "skipped" in kinds:
            figures.skipped += 1
        else:
            figures.passed += 1


def table(results: list[Figures], version: str, modules: list[str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows = [
        f"huggingface_hub {version} (sdist tests), releasehub at {git_head()}, {stamp}, "
        f"`pytest -n {ARGS.workers}` on this machine. Modules: {', '.join(f'`{m}`' for m in modules)}.",
        "",
        "| run | passed | failed | errors | skipped | deselected | pass rate (of passed+failed+errors) | time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fig in results:
        name = "`HF_HUB_DISABLE_XET=1` (LFS)" if fig.mode == "no-xet" else "Xet enabled (default)"
        note = " (stopped at the time bound)" if fig.timed_out else ""
        rows.append(
            f"| {name} | {fig.passed} | {fig.failed} | {fig.errors} | {fig.skipped} | {fig.deselected} | "
            f"{fig.percent:.1f}% | {fig.seconds / 60:.1f} min{note} |"
        )
    return "\n".join(rows)


def git_head() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


START, END = "<!-- compat:figures:start -->", "<!-- compat:figures:end -->"


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Compatibility with huggingface_hub's test suite\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{block}\n{END}{tail}")
    log(f"figures written to {DOC.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xet", choices=["off", "on", "both"], default="both")
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated test modules")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (<2: none)")
    parser.add_argument("--test-timeout", type=int, default=120, help="seconds per test (pytest-timeout)")
    parser.add_argument("--run-timeout", type=int, default=900, help="seconds per run, then it is stopped")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/compat.md")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    ARGS = args = parser.parse_args(argv)
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    version = installed_version()
    tarball, site = sdist(version), plugins()
    modes = {"off": ["no-xet"], "on": ["xet"], "both": ["no-xet", "xet"]}[args.xet]
    results = [run_mode(mode, tarball, site, modules, args) for mode in modes]
    block = table(results, version, modules)
    print(block)
    for fig in results:
        print(f"\n{fig.mode}: {fig.failed + fig.errors} failing (full list in .venv/compat/last-{fig.mode}.xml)")
        for nodeid, message in fig.failures:
            print(f"  {nodeid}: {message}")
    if not args.no_doc and args.xet == "both" and not args.pytest_args:
        write_doc(block)
    return 0


ARGS: argparse.Namespace

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
