"""`releasehub demo --hosted` without the vLLM environment: a clear message saying how to build it,
before anything is created; and the hosted demo model has the shape vLLM's CPU build serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from releasehub.demo import CHAT_TEMPLATE, build_hosted_model, build_tiny_model, engine_env_dir, engine_python


def test_without_the_engine_environment_it_says_how_to_build_it(tmp_path: Path) -> None:
    env = {**os.environ, "RELEASEHUB_ENGINE_ENV": str(tmp_path / "no-env"), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "releasehub", "demo", "--hosted", "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    said = " ".join(done.stdout.split())
    assert str(tmp_path / "no-env") in said and "make test-engine" in said and "scripts/engine_env.py" in said
    assert not (tmp_path / "data").exists()  # nothing seeded


def test_an_unfinished_environment_is_not_used(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RELEASEHUB_ENGINE_ENV", str(tmp_path / "env"))
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "python").write_text("")
    assert engine_env_dir() == tmp_path / "env" and engine_python() is None  # no stamp: the build did not finish
    (tmp_path / "env" / ".releasehub-engine-env.json").write_text("{}")
    assert engine_python() == tmp_path / "env" / "bin" / "python"


def test_the_hosted_model_has_head_size_32_and_a_chat_template(tmp_path: Path) -> None:
    build_hosted_model(tmp_path / "hosted")
    config = json.loads((tmp_path / "hosted" / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] == 32  # vLLM's CPU attention: 32, 64, 80, ...
    tokenizer_config = json.loads((tmp_path / "hosted" / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE
    # The default demo model is unchanged: no template
    build_tiny_model(tmp_path / "plain")
    assert "chat_template" not in json.loads((tmp_path / "plain" / "tokenizer_config.json").read_text())
