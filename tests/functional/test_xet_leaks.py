"""Property: the Xet paths that name content by hash tell a hidden thing from a missing one to no one.

Every such path is enumerated here: the v1 and v2 reconstructions (with no Range, a Range inside
the file, a Range past its end), the xorb range links, the dedup query. For each subject who may
not download the file (an outsider while a stage hides it, an anonymous token, a token issued
before a gate, a token of another repo), the answer for the file's hash must equal, byte for byte
once the hash is replaced, the answer for a hash the server never saw. For the xorb links, an
expired link, a forged signature, and a signature of another range answer the same for a stored
xorb as for an unknown one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from conftest import ServerProcess
from huggingface_hub import HfApi
from test_xet import cas_headers
from test_xet_download import publish

from releasehub.services import load_signing_key
from releasehub.xet.tokens import RangeLink

UNKNOWN = "0" * 63 + "1"


def fingerprint(answer: httpx.Response, asked: str) -> tuple[Any, ...]:
    """What an answer says, with the hash it was asked for replaced by a placeholder."""
    def clean(text: str | None) -> str | None:
        return None if text is None else text.replace(asked, "H")

    return (answer.status_code, answer.headers.get("x-error-code"), clean(answer.headers.get("x-error-message")),
            answer.headers.get("content-type"), answer.headers.get("content-range"), clean(answer.text))


def hash_paths() -> list[tuple[str, dict[str, str]]]:
    """(path template, extra headers) of every request naming a file by its Xet hash."""
    ranges: list[dict[str, str]] = [{}, {"Range": "bytes=10-99"}, {"Range": "bytes=100000000-"},
                                    {"Range": "bytes=-5"}]
    return [(f"/{version}/reconstructions/{{h}}", extra) for version in ("v1", "v2") for extra in ranges] + [
        ("/v1/chunks/default/{h}", {})]


def assert_like_unknown(server: ServerProcess, cas: dict[str, str], file_id: str, who: str) -> None:
    for template, extra in hash_paths():
        hidden = httpx.get(server.url + template.format(h=file_id), headers={**cas, **extra})
        missing = httpx.get(server.url + template.format(h=UNKNOWN), headers={**cas, **extra})
        assert hidden.status_code == 404, (who, template, extra, hidden.status_code)
        assert fingerprint(hidden, file_id) == fingerprint(missing, UNKNOWN), (who, template, extra)


def test_no_xet_hash_path_tells_hidden_from_missing(server: ServerProcess, owner: tuple[str, str],
                                                    repo_id: str) -> None:
    f = publish(server, owner, repo_id, seed=21)
    api = HfApi(endpoint=server.url, token=owner[1])
    _, outsider = server.user()
    outsider_read = cas_headers(server, repo_id, outsider, "read")
    anonymous_read = cas_headers(server, repo_id, "", "read")
    # Allowed first: the same tokens read the file (so the refusals below come from the decision).
    for cas in (outsider_read, anonymous_read):
        for version in ("v1", "v2"):
            assert httpx.get(f"{server.url}/{version}/reconstructions/{f.file_id}", headers=cas).status_code == 200

    # A stage hides weights/** from everyone outside the team.
    staged = {"stages": [{"name": "later", "files": ["weights/**"], "releases": []}]}
    assert httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=staged,
                     headers={"Authorization": f"Bearer {owner[1]}"}).status_code == 200
    assert_like_unknown(server, outsider_read, f.file_id, "outsider, staged")
    assert_like_unknown(server, anonymous_read, f.file_id, "anonymous, staged")
    assert httpx.put(f"{server.url}/api/models/{repo_id}/policy", json={"stages": []},
                     headers={"Authorization": f"Bearer {owner[1]}"}).status_code == 200
    # A gate: tokens issued before it stop reading at once.
    api.update_repo_settings(repo_id, gated="manual")
    assert_like_unknown(server, outsider_read, f.file_id, "outsider, gated")
    assert_like_unknown(server, anonymous_read, f.file_id, "anonymous, gated")
    # A token of another repo, even the owner's: the file is not that repo's.
    elsewhere = f"{owner[0]}/elsewhere-{uuid.uuid4().hex[:6]}"
    api.create_repo(elsewhere)
    assert_like_unknown(server, cas_headers(server, elsewhere, owner[1], "read"), f.file_id, "another repo")
    # The owner still reads it: the file is there.
    own = cas_headers(server, repo_id, owner[1], "read")
    assert httpx.get(f"{server.url}/v2/reconstructions/{f.file_id}", headers=own).status_code == 200


def test_xorb_links_answer_alike_for_stored_and_unknown_xorbs(server: ServerProcess, owner: tuple[str, str],
                                                              repo_id: str) -> None:
    f = publish(server, owner, repo_id, seed=22)
    key = load_signing_key(server.db)
    now = int(time.time())
    first = (f.offsets[0], f.offsets[1] - 1)
    gap = (f.offsets[1], f.offsets[2] - 1)  # chunk 1: bytes of no term of the file

    def url(xorb: str, link_spans: str, exp: int, sig: str) -> str:
        return f"{server.url}/v1/xorb-ranges/{xorb}?bytes={link_spans}&exp={exp}&sig={sig}"

    def cases(xorb: str) -> dict[str, str]:
        expired = RangeLink(xorb, (first,), now - 5)
        signed = RangeLink(xorb, (first,), now + 600)
        return {
            "expired": url(xorb, f"{first[0]}-{first[1]}", expired.expires, expired.sign(key)),
            "forged": url(xorb, f"{first[0]}-{first[1]}", signed.expires, "ab" * 32),
            "another range": url(xorb, f"{gap[0]}-{gap[1]}", signed.expires, signed.sign(key)),
            "widened": url(xorb, f"{first[0]}-{gap[1]}", signed.expires, signed.sign(key)),
            "malformed": url(xorb, "x", signed.expires, signed.sign(key)),
            "unsigned": f"{server.url}/v1/xorb-ranges/{xorb}",
        }

    stored, unknown = cases(f.xorb_hash), cases(UNKNOWN)
    for name in stored:
        for headers in ({}, {"Range": f"bytes={gap[0]}-{gap[1]}"}):
            a, b = httpx.get(stored[name], headers=headers), httpx.get(unknown[name], headers=headers)
            assert a.status_code == 403, (name, a.status_code)
            assert fingerprint(a, f.xorb_hash) == fingerprint(b, UNKNOWN), name
    # The signed link itself serves its bytes: the refusals above are the link's, not the store's.
    good = RangeLink(f.xorb_hash, (first,), now + 600)
    served = httpx.get(url(f.xorb_hash, f"{first[0]}-{first[1]}", good.expires, good.sign(key)))
    assert served.status_code == 200, (served.status_code, served.headers.get("x-error-message"))
    assert served.content == f.xorb[first[0]:first[1] + 1]
