"""Run by a given huggingface_hub version (in its own virtualenv) against a live server.

Usage: python hub_client_roundtrip.py ENDPOINT TOKEN REPO_ID WORKDIR
Prints one JSON object with what it observed; the calling test asserts on it.
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
endpoint, token, repo_id, workdir = sys.argv[1:5]

import huggingface_hub  # noqa: E402
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402

work = Path(workdir)
folder = work / "upload"
(folder / "sub").mkdir(parents=True)
(folder / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# v1 client\n")
(folder / "weights.safetensors").write_bytes(bytes(range(256)) * 4000)
(folder / "sub" / "notes.txt").write_text("hello")

api = HfApi(endpoint=endpoint, token=token)
api.create_repo(repo_id, exist_ok=True)
commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id)
api.create_branch(repo_id, branch="dev")
api.create_tag(repo_id, tag="v1.0")
info = api.model_info(repo_id, files_metadata=True)
weights = hf_hub_download(repo_id, "weights.safetensors", endpoint=endpoint, token=token,
                          cache_dir=str(work / "cache"))
snapshot = snapshot_download(repo_id, revision="v1.0", endpoint=endpoint, token=token,
                             cache_dir=str(work / "cache2"), allow_patterns=["*.txt", "*.md"])
refs = api.list_repo_refs(repo_id)
print(json.dumps({
    "version": huggingface_hub.__version__,
    "commit": commit.oid,
    "sha": info.sha,
    "card_license": info.card_data["license"] if info.card_data else None,
    "siblings": sorted(s.rfilename for s in info.siblings),
    "weights_ok": Path(weights).read_bytes() == (folder / "weights.safetensors").read_bytes(),
    "snapshot_files": sorted(p.relative_to(snapshot).as_posix() for p in Path(snapshot).rglob("*") if p.is_file()),
    "branches": sorted(b.name for b in refs.branches),
    "tags": sorted(t.name for t in refs.tags),
    "whoami": api.whoami()["name"],
}))
