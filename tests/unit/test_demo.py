"""The demo model is real enough for transformers, deterministic, and seeded idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasehub.accounts import service as accounts
from releasehub.demo import build_tiny_model, seed_demo
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.settings import Settings

EXPECTED_FILES = {
    "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "README.md",
}


def test_build_is_deterministic(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a")
    second = build_tiny_model(tmp_path / "b")
    assert {p.name for p in first} == EXPECTED_FILES
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_seed_changes_only_the_weights(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in build_tiny_model(tmp_path / "a", seed=0)}
    second = {p.name: p.read_bytes() for p in build_tiny_model(tmp_path / "b", seed=1)}
    assert first["model.safetensors"] != second["model.safetensors"]
    assert first["tokenizer.json"] == second["tokenizer.json"]


def test_weights_have_llama_names_and_shapes(tmp_path: Path) -> None:
    import json

    from safetensors.numpy import load_file

    build_tiny_model(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    tensors = load_file(tmp_path / "model.safetensors")
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    kv = config["num_key_value_heads"] * hidden // config["num_attention_heads"]
    assert tensors["model.embed_tokens.weight"].shape == (vocab, hidden)
    assert tensors["lm_head.weight"].shape == (vocab, hidden)
    assert tensors["model.layers.1.self_attn.k_proj.weight"].shape == (kv, hidden)
    assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (hidden, config["intermediate_size"])
    assert len(tensors) == 2 + 9 * config["num_hidden_layers"] + 1
    assert all(str(t.dtype) == "float32" for t in tensors.values())


def test_model_card_front_matter_is_hub_card_data(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    build_tiny_model(tmp_path)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "text-generation"
    assert set(card.data.tags) >= {"releasehub-demo", "tiny", "llama"}
    assert card.data.eval_results and "random weights" in (card.data.eval_results[0].metric_name or "")
    assert "hf download demo/tiny-llama" in card.text


def test_transformers_loads_and_runs_it(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    build_tiny_model(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert config.model_type == "llama" and tokenizer.vocab_size == config.vocab_size
    sentence = "A model release is more than a file of weights, even for unseen words like Zanzibar."
    ids = tokenizer(sentence, return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == config.bos_token_id
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == sentence
    with torch.no_grad():
        logits = model(ids).logits
    assert tuple(logits.shape) == (1, ids.shape[1], config.vocab_size)
    assert torch.isfinite(logits).all()


def test_seed_demo_is_idempotent(tmp_path: Path) -> None:
    services = Services.build(Settings(data_dir=tmp_path))
    try:
        first = seed_demo(services)
        assert (first.repo_id, first.user) == ("demo/tiny-llama", "demo")
        with services.db.session() as session:
            repo = repos.get_repo(session, "demo", "tiny-llama")
            assert not repo.private
            head = repos.resolve_revision(session, repo, "main")
            assert head.title == "Add tiny demo model"
            assert head.card_data is not None and head.card_data["license"] == "apache-2.0"
            files = repos.commit_files(session, head)
            assert set(files) == EXPECTED_FILES | {".gitattributes"}
            assert files["model.safetensors"].lfs and not files["config.json"].lfs
            assert services.store.exists(files["model.safetensors"].sha256)
        second = seed_demo(services)
        with services.db.session() as session:
            repo = repos.get_repo(session, "demo", "tiny-llama")
            again = repos.resolve_revision(session, repo, "main")
            assert len(repos.list_commits(session, repo, again)) == 2  # the initial commit and ours
            subjects = [accounts.authenticate(session, r.token) for r in (first, second)]
        assert again.oid == head.oid
        assert first.files == second.files == len(EXPECTED_FILES) + 1
        assert first.token != second.token
        assert all(s is not None and s.name == "demo" and s.can_write for s in subjects)
    finally:
        services.close()


def test_demo_prints_commands_that_run_as_printed(tmp_path: Path) -> None:
    """Each printed command is one line at any terminal width, and names an hf that exists."""
    import shutil
    import sys

    from typer.testing import CliRunner

    from releasehub.cli.main import app

    result = CliRunner().invoke(app, ["demo", "--no-serve", "--data-dir", str(tmp_path / "demo"), "--port", "8123"],
                                env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("HF_ENDPOINT=")]
    assert len(lines) == 3 and all(len(line) > 60 for line in lines)  # not wrapped at 60 columns
    download = lines[0].split()
    assert download[2:4] == ["download", "demo/tiny-llama"] and download[0] == "HF_ENDPOINT=http://127.0.0.1:8123"
    hf = download[1]
    assert shutil.which(hf) is not None or Path(hf).exists()
    assert Path(hf).name == "hf" and (hf == "hf" or Path(hf).parent == Path(sys.executable).parent)


def test_seed_demo_adds_a_gated_twin_and_two_users_with_fresh_passwords(tmp_path: Path) -> None:
    from releasehub.access import service as access_service
    from releasehub.accounts import sessions

    services = Services.build(Settings(data_dir=tmp_path))
    try:
        first = seed_demo(services)
        second = seed_demo(services)
        assert first.gated_repo_id == "demo/tiny-llama-gated"
        assert set(first.passwords) == set(second.passwords) == {"demo", "visitor"}
        assert all(first.passwords[u] != second.passwords[u] for u in first.passwords)
        with services.db.session() as session:
            for user, password in second.passwords.items():
                assert sessions.check_password(session, user, password) is not None
                assert sessions.check_password(session, user, first.passwords[user]) is None
            gated = repos.get_repo(session, "demo", "tiny-llama-gated")
            assert gated.gated == "manual" and not gated.private
            head = repos.resolve_revision(session, gated, "main")
            assert len(repos.list_commits(session, gated, head)) == 2  # seeding twice commits once
            assert set(repos.commit_files(session, head)) == EXPECTED_FILES | {".gitattributes"}
            gate = access_service.stored_doc(gated).gate
            assert [(f.label, f.type) for f in gate.fields] == [
                ("Company", "text"), ("Country", "country"),
                ("I agree to use this model for research only", "checkbox")]
            assert gate.prompt and gate.button_content == "Request access to tiny-llama-gated"
            card = services.store.read_bytes(repos.commit_files(session, head)["README.md"].sha256).decode()
            assert "hf download demo/tiny-llama-gated" in card and "demo/tiny-llama " not in card
            open_repo = repos.get_repo(session, "demo", "tiny-llama")
            assert open_repo.gated is None
    finally:
        services.close()


def test_demo_prints_the_pages_and_the_passwords(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from releasehub.cli.main import app

    result = CliRunner().invoke(app, ["demo", "--no-serve", "--data-dir", str(tmp_path / "demo"), "--port", "8124"])
    assert result.exit_code == 0, result.output
    out = result.output
    for url in ("http://127.0.0.1:8124/demo/tiny-llama\n", "http://127.0.0.1:8124/demo/tiny-llama-gated ",
                "http://127.0.0.1:8124/login\n"):
        assert url in out, url
    passwords = dict(line.strip().removeprefix("password of ").split(": ") for line in out.splitlines()
                     if line.strip().startswith("password of "))
    assert set(passwords) == {"demo", "visitor"} and all(len(p) >= 10 for p in passwords.values())
