"""The basic round trip with the unchanged client: create, upload, read back."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download


def test_upload_and_download_round_trip(api: HfApi, repo_id: str, server, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Model\n")
    (folder / "weights.safetensors").write_bytes(b"\x01\x02" * 40_000)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    info = api.model_info(repo_id, files_metadata=True)
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "README.md", "weights.safetensors"}
    assert info.card_data["license"] == "mit"
    path = hf_hub_download(repo_id, "weights.safetensors", endpoint=server.url, token=api.token,
                           cache_dir=str(tmp_path / "cache"))
    assert Path(path).read_bytes() == (folder / "weights.safetensors").read_bytes()
