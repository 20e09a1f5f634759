"""Fixtures for huggingface_hub's own tests, run by compat/run.py against a live releasehub server.

The client's sdist ships tests/ without tests/conftest.py; run.py copies this file there. It gives
what the tests ask for: `api`, `repo_factory` and `new_repo_id` (on ENDPOINT_STAGING, which run.py points at the
server), `api_prod`, `RepoFactory`, a fresh cache, token path and OAuth refresh state per test, and the suite's markers
(`xet`, `no_xet`, `production`, `deprecated`, `git_lfs`).

Xet markers: with HF_HUB_DISABLE_XET=1 (the LFS run) `xet` tests skip and `no_xet` tests run, since
the client then behaves as without hf_xet; in the Xet run `xet` tests run with Xet forced on and
`no_xet` tests skip when hf_xet is installed.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any, Iterator, Protocol

import pytest

from huggingface_hub import HfApi, RepoUrl, constants
from huggingface_hub.utils import SoftTemporaryDirectory
from huggingface_hub.utils._runtime import is_package_available

from .testing_constants import ENDPOINT_PRODUCTION, ENDPOINT_STAGING, TOKEN, USER
from .testing_utils import repo_name

XET_DISABLED = os.environ.get("HF_HUB_DISABLE_XET", "").lower() in {"1", "true", "yes", "on"}
# Nor does the sdist ship tests/fixtures/ (sample model cards, a working repo): tests that read it skip.
FIXTURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def pytest_configure(config: pytest.Config) -> None:
    # Registered by pytest-vcr, which only the inference tests use (deselected); --strict-markers.
    config.addinivalue_line("markers", "vcr: recorded HTTP cassette (pytest-vcr)")
    # A test that creates a dataset or Space repo is out of scope (releasehub serves model repos only
    # and answers 400 "Only model repositories are served here"): it skips instead of failing. Most
    # are deselected by name; this catches those whose names do not say it, class-scoped setups
    # included (so patched for the whole process, not per test).
    create = HfApi.create_repo

    def create_repo(self: HfApi, *args: Any, **kwargs: Any) -> RepoUrl:
        if kwargs.get("repo_type") in ("dataset", "space"):
            pytest.skip(f"creates a {kwargs['repo_type']} repo: out of scope, releasehub serves model repos")
        return create(self, *args, **kwargs)

    HfApi.create_repo = create_repo  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except (OSError, ValueError) as exc:
        if FIXTURES_DIR in str(exc) and not os.path.isdir(FIXTURES_DIR):
            pytest.skip("reads tests/fixtures/, which the sdist does not ship")
        raise


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with SoftTemporaryDirectory() as cache:
        for name, sub in [("HF_HOME", ""), ("HF_HUB_CACHE", "hub"), ("HUGGINGFACE_HUB_CACHE", "hub"),
                          ("HF_XET_CACHE", "xet"), ("HF_ASSETS_CACHE", "assets"), ("HF_TOKEN_PATH", "token"),
                          ("HF_STORED_TOKENS_PATH", "stored_tokens")]:
            if hasattr(constants, name):
                monkeypatch.setattr(constants, name, os.path.join(cache, sub) if sub else cache)
        yield


@pytest.fixture(autouse=True)
def _fresh_oauth_state() -> None:
    """`get_token()` caches its OAuth refresh decision process-wide: reset it between tests."""
    from huggingface_hub.utils import _auth

    for name, value in [("_OAUTH_REFRESH_CACHE", None), ("_OAUTH_REFRESH_WARNED", False)]:
        if hasattr(_auth, name):
            setattr(_auth, name, value)


@pytest.fixture(autouse=True)
def _markers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    node = request.node
    if node.get_closest_marker("xet") is not None:
        if XET_DISABLED:
            pytest.skip("Xet test, and this run has HF_HUB_DISABLE_XET=1")
        if not is_package_available("hf_xet"):
            pytest.skip("Xet test, and hf_xet is not installed")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    if node.get_closest_marker("no_xet") is not None and not XET_DISABLED and is_package_available("hf_xet"):
        pytest.skip("test for the client without Xet, and hf_xet is installed")
    if node.get_closest_marker("git_lfs") is not None and os.environ.get("RUN_GIT_LFS_TESTS") != "1":
        pytest.skip("git-lfs test (set RUN_GIT_LFS_TESTS=1 to run)")
    if node.get_closest_marker("production") is not None:
        pytest.skip("production Hub test")  # deselected by run.py anyway
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_EXPERIMENTAL_WARNING", True)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    names = [name for marker in node.iter_markers("deprecated") for name in marker.args]
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(pytest.warns(FutureWarning, match=rf".*'{name}'.*"))
        yield


@pytest.fixture(scope="session")
def api() -> HfApi:
    return HfApi(endpoint=ENDPOINT_STAGING, token=TOKEN)


@pytest.fixture(scope="session")
def api_prod() -> HfApi:
    return HfApi(endpoint=ENDPOINT_PRODUCTION)


class RepoFactory(Protocol):
    def __call__(self, repo_type: str = "model", **kwargs: Any) -> RepoUrl: ...


@pytest.fixture
def repo_factory(api: HfApi) -> Iterator[RepoFactory]:
    created: list[tuple[str, str]] = []

    def make(repo_type: str = "model", **kwargs: Any) -> RepoUrl:
        kwargs.setdefault("repo_id", repo_name(prefix=repo_type))
        url = api.create_repo(repo_type=repo_type, **kwargs)
        created.append((url.repo_id, repo_type))
        return url

    yield make
    for repo_id, repo_type in created:
        try:
            api.delete_repo(repo_id=repo_id, repo_type=repo_type)
        except Exception:
            pass


@pytest.fixture
def new_repo_id(api: HfApi) -> Iterator[str]:
    """The id of a model repo that does not exist yet (the test creates it); deleted afterwards."""
    repo_id = f"{USER}/{repo_name()}"
    yield repo_id
    try:
        api.delete_repo(repo_id=repo_id, missing_ok=True)
    except Exception:
        pass
