"""`transformers` loads a model from the server exactly as it would from the Hub.

huggingface_hub reads HF_ENDPOINT once, at import, into `constants.ENDPOINT` and into the
download URL template `constants.HUGGINGFACE_CO_URL_TEMPLATE` (which `hf_hub_url` formats when no
`endpoint=` is passed, as transformers never passes one). transformers also keeps one shared
`HfApi` (`transformers.utils.hub._hf_api`), built on first use with the endpoint of that moment.
So the in-process equivalent of `HF_ENDPOINT=<server>` is to patch both constants and drop that
shared client; the token is passed explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, constants

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture
def hub_endpoint(server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    import transformers.utils.hub as transformers_hub

    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(transformers_hub, "_hf_api", None)
    return str(server.url)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    from releasehub.demo import build_tiny_model

    folder = tmp_path / "tiny-model"
    folder.mkdir()
    build_tiny_model(folder)
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).is_file(), f"build_tiny_model wrote no {name}"
    return folder


def _config_dict(config: Any) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}


def _local_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_from_pretrained_matches_local(hub_endpoint: str, api: HfApi, repo_id: str, tiny_model: Path,
                                       tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    commit = api.upload_folder(repo_id=repo_id, folder_path=str(tiny_model))
    cache = str(tmp_path / "cache")
    token = api.token

    remote_config = AutoConfig.from_pretrained(repo_id, token=token, cache_dir=cache)
    local_config = AutoConfig.from_pretrained(str(tiny_model))
    assert remote_config.model_type == local_config.model_type == "llama"
    assert _config_dict(remote_config) == _config_dict(local_config)

    remote_tokenizer = AutoTokenizer.from_pretrained(repo_id, token=token, cache_dir=cache)
    local_tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    text = "hello world, this is a tiny model"
    assert remote_tokenizer(text)["input_ids"] == local_tokenizer(text)["input_ids"]
    assert remote_tokenizer.get_vocab() == local_tokenizer.get_vocab()

    remote_model = AutoModelForCausalLM.from_pretrained(repo_id, token=token, cache_dir=cache).eval()
    local_model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    assert type(remote_model).__name__ == "LlamaForCausalLM"
    vocab = remote_model.config.vocab_size
    input_ids = torch.tensor([[(7 * i + 3) % vocab for i in range(12)]])
    with torch.no_grad():
        remote_logits = remote_model(input_ids).logits
        local_logits = local_model(input_ids).logits
    assert remote_logits.shape == (1, 12, vocab)
    assert torch.equal(remote_logits, local_logits)
    remote_state = remote_model.state_dict()
    for key, value in local_model.state_dict().items():
        assert torch.equal(remote_state[key], value), key

    # The files went through the Hub cache layout, at the commit just pushed.
    owner, name = repo_id.split("/")
    snapshot = Path(cache) / f"models--{owner}--{name}" / "snapshots" / commit.oid
    assert (snapshot / "config.json").is_file()
    assert (snapshot / "model.safetensors").read_bytes() == (tiny_model / "model.safetensors").read_bytes()
    assert (Path(cache) / f"models--{owner}--{name}" / "refs" / "main").read_text() == commit.oid
    assert _local_files(snapshot) <= _local_files(tiny_model)


def test_from_pretrained_at_revision(hub_endpoint: str, api: HfApi, repo_id: str, tiny_model: Path,
                                     tmp_path: Path) -> None:
    """A tagged release stays loadable (and unchanged) after main moves on."""
    from transformers import AutoModelForCausalLM

    first = api.upload_folder(repo_id=repo_id, folder_path=str(tiny_model))
    api.create_tag(repo_id, tag="v1.0", revision=first.oid)
    api.delete_file("model.safetensors", repo_id=repo_id)  # main no longer holds weights

    cache = str(tmp_path / "cache")
    model = AutoModelForCausalLM.from_pretrained(repo_id, revision="v1.0", token=api.token, cache_dir=cache)
    by_sha = AutoModelForCausalLM.from_pretrained(repo_id, revision=first.oid, token=api.token,
                                                  cache_dir=cache)
    local = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    for key, value in local.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
        assert torch.equal(by_sha.state_dict()[key], value), key
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(repo_id, token=api.token, cache_dir=str(tmp_path / "cache-main"))
