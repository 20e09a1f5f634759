"""`releasehub demo --hosted`: the demo also starts vLLM on the hosted demo model and serves it through
/v1; the keys it prints work with the unchanged `openai` client, within their tiers; stopping the
demo stops vLLM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import free_port


def test_demo_hosted_serves_the_demo_model_through_v1(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
    demo = subprocess.Popen([sys.executable, "-m", "releasehub", "demo", "--hosted", "--port", str(port),
                             "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 400  # vLLM's start (bounded at 300 s by the demo) and the server's
        while True:
            assert demo.poll() is None, "the demo exited:\n" + "".join(lines)
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the demo did not serve in time:\n" + "".join(lines)
            time.sleep(1)
        said = "".join(lines)
        keys = dict(re.findall(r"API key of visitor, tier (\w+): (\S+)", said))
        engine_url = re.search(r"vLLM ready after \d+ s at (\S+)", said).group(1)  # type: ignore[union-attr]
        assert set(keys) == {"public", "researcher"}, said
        researcher = openai.OpenAI(base_url=f"{url}/v1", api_key=keys["researcher"], max_retries=0)
        public = openai.OpenAI(base_url=f"{url}/v1", api_key=keys["public"], max_retries=0)
        assert [m.id for m in researcher.models.list()] == ["demo/tiny-llama-hosted"]
        chat = public.chat.completions.create(model="demo/tiny-llama-hosted", max_tokens=4,
                                              messages=[{"role": "user", "content": "Hello"}],
                                              extra_body={"ignore_eos": True})
        assert chat.model == "tiny-llama-hosted" and chat.usage.completion_tokens == 4
        scored = researcher.completions.create(model="demo/tiny-llama-hosted", prompt="Hello", max_tokens=2,
                                               logprobs=2)
        assert scored.choices[0].logprobs is not None
        with pytest.raises(openai.PermissionDeniedError):
            public.completions.create(model="demo/tiny-llama-hosted", prompt="Hello", max_tokens=2, logprobs=2)
        # Hosted only: the weights are not downloadable
        assert httpx.get(f"{url}/demo/tiny-llama-hosted/resolve/main/model.safetensors").status_code in (403, 404)
        researcher.close()
        public.close()
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)  # as Ctrl-C
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(timeout=30)
        reader.join(timeout=10)
        if demo.stdout is not None:
            demo.stdout.close()
    with pytest.raises(httpx.HTTPError):  # vLLM stopped with the demo
        httpx.get(f"{engine_url}/health", timeout=5)
