"""The Xet formats: hashes against the docs' example and the real implementation (hf_xet), xorb and
shard parsing with every refusal, CAS tokens."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import hf_xet
import lz4.frame
import pytest

from releasehub.errors import BadRequest, Forbidden, Unauthorized
from releasehub.xet import tokens
from releasehub.xet.hashing import (
    aggregated_hash, chunk_hash, file_hash, hash_from_hex, hash_hex, verification_hash, xorb_hash,
)
from releasehub.xet.shard import BOOKEND, HEADER_TAG, FileInfo, Term, build_shard, parse_shard
from releasehub.xet.xorb import (
    BG4_LZ4, LZ4, NONE, ChunkHeader, XorbIndex, bg4_group, bg4_regroup, build_xorb, iter_unpacked, read_xorb,
)

CHUNK = 128 * 1024  # the chunker's largest chunk: runs of one byte value are cut at this size


def test_hash_strings_follow_the_docs_example() -> None:
    # hub-docs api.md, "Converting Hashes to Strings": each 8-byte word reversed.
    raw = bytes(range(32))
    assert hash_hex(raw) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hash_from_hex(hash_hex(raw)) == raw
    for bad in ("00" * 31, "AB" * 32, "zz" * 32):
        with pytest.raises(ValueError):
            hash_from_hex(bad)


def _hf_xet_file_hash(path: Path) -> str:
    (info,) = hf_xet.hash_files([str(path)])
    return str(info.hash)


@pytest.mark.parametrize("runs", [1, 3, 13, 40])
def test_file_hash_matches_the_real_implementation(tmp_path: Path, runs: int) -> None:
    """hf_xet (the Rust client) hashes a file; we hash its chunks. Runs of one byte value give the
    content-defined chunker no boundary, so chunks are the runs: 128 KiB each, then the tail. With
    13 and 40 chunks the aggregated tree has several levels and uneven groups."""
    data = b"".join(bytes([i]) * CHUNK for i in range(runs)) + b"tail" * 100
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    chunks = [(chunk_hash(data[i:i + CHUNK]), len(data[i:i + CHUNK])) for i in range(0, len(data), CHUNK)]
    assert hash_hex(file_hash(chunks)) == _hf_xet_file_hash(path)


def test_small_file_is_one_chunk(tmp_path: Path) -> None:
    data = b"hello xet\n"
    path = tmp_path / "small.txt"
    path.write_bytes(data)
    expected = _hf_xet_file_hash(path)
    assert hash_hex(file_hash([(chunk_hash(data), len(data))])) == expected
    assert aggregated_hash([(chunk_hash(data), len(data))]) == chunk_hash(data)  # a lone leaf is the root


def test_tree_and_verification_hashes_depend_on_order_and_sizes() -> None:
    pairs = [(chunk_hash(bytes([i]) * 10), 10) for i in range(20)]
    assert xorb_hash(pairs) != xorb_hash(pairs[::-1])
    assert xorb_hash(pairs) != xorb_hash([(h, s + 1) for h, s in pairs])
    assert file_hash(pairs) != xorb_hash(pairs)
    assert xorb_hash([]) == bytes(32) == file_hash([])
    hashes = [h for h, _ in pairs]
    assert verification_hash(hashes[2:5]) != verification_hash(hashes[2:6])


# ---------------------------------------------------------------- xorbs


def _chunks() -> list[bytes]:
    rng = random.Random(1)
    return [rng.randbytes(1000), b"abc" * 30000, bytes(range(256)) * 100 + b"xy", b"\x01\x02\x03"]


@pytest.mark.parametrize("scheme", [NONE, LZ4, BG4_LZ4])
def test_xorb_is_read_and_indexed(scheme: int) -> None:
    chunks = _chunks()
    pairs = [(chunk_hash(c), len(c)) for c in chunks]
    body = build_xorb(chunks, scheme)
    index = read_xorb(io.BytesIO(body), xorb_hash(pairs))
    assert index.sizes == [len(c) for c in chunks]
    assert index.chunk_hashes == [h for h, _ in pairs]
    assert index.offsets[0] == 0 and index.packed_bytes == len(body)
    assert XorbIndex.unpack(index.hash, index.pack(), index.packed_bytes) == index


@pytest.mark.parametrize("scheme", [NONE, LZ4, BG4_LZ4])
def test_stored_chunks_are_read_back_in_batches_of_bounded_reads(scheme: int) -> None:
    chunks = _chunks()
    body = build_xorb(chunks, scheme)
    index = read_xorb(io.BytesIO(body), xorb_hash([(chunk_hash(c), len(c)) for c in chunks]))
    for start, end in [(0, len(chunks)), (1, 3), (len(chunks) - 1, len(chunks))]:
        for span in (1, 2 * CHUNK, 1 << 30):  # one chunk per read, a few, the whole range
            batches = [bytes(batch) for batch in iter_unpacked(io.BytesIO(body), index, start, end, span_bytes=span)]
            assert b"".join(batches) == b"".join(chunks[start:end])
            if span == 1:
                assert len(batches) == end - start
    damaged = bytearray(body)
    damaged[index.offsets[2] + 5] ^= 1  # chunk 2's declared unpacked size
    with pytest.raises(BadRequest, match="chunk 2|Chunk 2"):
        b"".join(iter_unpacked(io.BytesIO(bytes(damaged)), index, 0, len(chunks)))


def test_byte_grouping_layout() -> None:
    # hub-docs xorb.md: [A1 A2 A3 A4 B1 B2 B3 B4 C1 C2] -> [A1 B1 C1 A2 B2 C2 A3 B3 A4 B4]
    assert bg4_group(b"ABCDabcdXY") == b"AaXBbYCcDd"
    assert bg4_regroup(b"AaXBbYCcDd") == b"ABCDabcdXY"
    for n in range(13):
        data = os.urandom(n)
        assert bg4_regroup(bg4_group(data)) == data


def _refused(body: bytes, expected: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        read_xorb(io.BytesIO(body), expected)
    assert words in caught.value.message


def test_xorb_refusals() -> None:
    chunks = _chunks()
    good_hash = xorb_hash([(chunk_hash(c), len(c)) for c in chunks])
    body = build_xorb(chunks, LZ4)
    _refused(body, hash_from_hex("00" * 32), "not to")
    _refused(b"", good_hash, "no chunk")
    _refused(body[:5], good_hash, "inside the header")
    _refused(body[:-1], good_hash, "inside chunk")
    _refused(b"\x01" + body[1:], good_hash, "header version")
    first = ChunkHeader.parse(body[:8])
    # Corrupt LZ4 data, and a frame that holds more than its declared size (bounded).
    corrupt = bytearray(body)
    corrupt[12:30] = b"\xee" * 18
    _refused(bytes(corrupt), good_hash, "Chunk 0")
    bomb = lz4.frame.compress(bytes(4 * 1024 * 1024))
    _refused(ChunkHeader(0, len(bomb), LZ4, 1000).pack() + bomb, good_hash, "declared 1000 bytes")
    short = lz4.frame.compress(b"x" * 10)
    _refused(ChunkHeader(0, len(short), LZ4, 11).pack() + short, good_hash, "declared 11 bytes")
    _refused(ChunkHeader(0, 4, 9, 4).pack() + b"abcd", good_hash, "compression type 9")
    _refused(ChunkHeader(0, 4, NONE, 5).pack() + b"abcd", good_hash, "two sizes")
    _refused(ChunkHeader(0, 4, NONE, 0).pack() + b"abcd", good_hash, "declares 0 bytes")
    _refused(ChunkHeader(0, 200_000, NONE, 200_000).pack(), good_hash, "declares 200000 bytes")
    assert first.version == 0


# ---------------------------------------------------------------- shards


def _file(seed: int, verification: bool = True, sha: bool = True) -> FileInfo:
    pairs = [(chunk_hash(bytes([seed, i])), 100 + i) for i in range(3)]
    terms = [Term(xorb_hash(pairs), sum(s for _, s in pairs), 0, 3)]
    return FileInfo(file_hash(pairs), terms, [verification_hash([h for h, _ in pairs])] if verification else None,
                    bytes([seed]) * 32 if sha else None)


def test_shard_round_trip_with_cas_info_and_footer() -> None:
    files = [_file(1), _file(2, verification=False, sha=False)]
    body = build_shard(files, [(bytes(32), [(bytes(32), 10)])])
    parsed = parse_shard(body)
    assert parsed.files == files and parsed.xorbs == [bytes(32)]
    with_footer = body[:40] + (200).to_bytes(8, "little") + body[48:] + bytes(200)
    assert parse_shard(with_footer).files == files


@pytest.mark.parametrize("mangle, words", [
    (lambda b: b[:30], "shorter than its header"),
    (lambda b: b"X" + b[1:], "tag"),
    (lambda b: b[:32] + (3).to_bytes(8, "little") + b[40:], "version 3"),
    (lambda b: b[:40] + (7).to_bytes(8, "little") + b[48:], "footer size 7"),
    (lambda b: b[:-48], "ends inside the CAS info"),
    (lambda b: b[:100], "ends inside"),
    (lambda b: b + b"extra", "after its CAS info"),
])
def test_shard_refusals(mangle, words: str) -> None:  # type: ignore[no-untyped-def]
    body = build_shard([_file(1)])
    with pytest.raises(BadRequest) as caught:
        parse_shard(mangle(body))
    assert words in caught.value.message


def test_shard_term_count_is_bounded_before_reading() -> None:
    header = HEADER_TAG + (2).to_bytes(8, "little") + bytes(8)
    huge = bytes(32) + (0).to_bytes(4, "little") + (2**32 - 1).to_bytes(4, "little") + bytes(8)
    with pytest.raises(BadRequest):
        parse_shard(header + huge + BOOKEND + BOOKEND)


# ---------------------------------------------------------------- tokens


def test_cas_tokens_are_signed_scoped_and_expire() -> None:
    key = b"k" * 32
    token, grant = tokens.issue(key, 5, 7, tokens.WRITE, 60, now=1000)
    assert tokens.verify(key, f"Bearer {token}", tokens.WRITE, now=1059) == grant
    assert tokens.verify(key, f"Bearer {token}", None, now=1059).repo_id == 5
    with pytest.raises(Forbidden):
        tokens.verify(key, f"Bearer {token}", tokens.READ, now=1000)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(key, f"Bearer {token}", tokens.WRITE, now=1061)
    with pytest.raises(Unauthorized, match="signature"):
        tokens.verify(b"other" * 8, f"Bearer {token}", tokens.WRITE, now=1000)
    forged = token.replace(".5.", ".6.", 1)
    with pytest.raises(Unauthorized, match="signature"):
        tokens.verify(key, f"Bearer {forged}", tokens.WRITE, now=1000)
    for header in (None, "", token, "Bearer rh_abc", "Basic x"):
        with pytest.raises(Unauthorized):
            tokens.verify(key, header, tokens.WRITE, now=1000)


def test_readable_ranges_cover_only_inside_files() -> None:
    from releasehub.xet.reuse import covered

    ranges = [(0, 10), (10, 20), (30, 40)]
    assert covered(ranges, 0, 10) and covered(ranges, 5, 20)  # adjacent files' terms join
    assert covered(ranges, 31, 39)
    assert not covered(ranges, 15, 31)  # a gap: chunks of no readable file
    assert not covered(ranges, 35, 41) and not covered([], 0, 1)


def test_a_shard_naming_too_many_chunks_is_refused_before_any_work() -> None:
    from releasehub.errors import PayloadTooLarge
    from releasehub.xet import service

    terms = [Term(b"\x01" * 32, 1, 0, 8192)] * 1025  # 8.4 M chunk references
    body = build_shard([FileInfo(b"\x02" * 32, terms, [bytes(32)] * 1025, b"\x03" * 32)])
    with pytest.raises(PayloadTooLarge):
        service.register_shard(None, None, body)  # type: ignore[arg-type]  # refused before it needs either


def test_read_tokens_may_name_a_commit_and_old_tokens_still_verify() -> None:
    key = b"k" * 32
    commit = "ab" * 20
    token, grant = tokens.issue(key, 5, 7, tokens.READ, 60, now=1000, commit=commit)
    assert grant.commit == commit and tokens.verify(key, f"Bearer {token}", tokens.READ, now=1000) == grant
    other = token.replace(commit, "cd" * 20)  # the commit is signed
    with pytest.raises(Unauthorized, match="signature"):
        tokens.verify(key, f"Bearer {other}", tokens.READ, now=1000)
    plain, plain_grant = tokens.issue(key, 5, 7, tokens.READ, 60, now=1000)
    assert len(plain.split(".")) == 6 and tokens.verify(key, f"Bearer {plain}", None, now=1000) == plain_grant
    with pytest.raises(ValueError):
        tokens.issue(key, 5, 7, tokens.READ, 60, commit="main")


def test_range_links_sign_exactly_their_spans() -> None:
    key = b"k" * 32
    one = tokens.RangeLink("a" * 64, ((0, 99),), 2000)
    # One span signs as links did before several spans existed.
    assert one.message() == f"xet-xorb-range:{'a' * 64}:0:99:2000".encode()
    link = tokens.RangeLink("a" * 64, ((0, 99), (200, 299)), 2000)
    spans, expires, sig = (part.split("=", 1)[1] for part in link.query(key).split("&"))
    assert tokens.verify_link(key, "a" * 64, spans, expires, sig, now=1999) == link
    assert link.covers(0, 99) and link.covers(210, 220) and not link.covers(50, 250) and not link.covers(100, 100)
    for forged in ("0-99", "0-99,200-300", "0-299", "200-299,0-99"):
        with pytest.raises(Forbidden):
            tokens.verify_link(key, "a" * 64, forged, expires, sig, now=1999)
    with pytest.raises(Forbidden, match="expired"):
        tokens.verify_link(key, "a" * 64, spans, expires, sig, now=2001)
    with pytest.raises(Forbidden):
        tokens.verify_link(key, "b" * 64, spans, expires, sig, now=1999)  # another xorb
    assert tokens.parse_spans("5-1") is None and tokens.parse_spans("0-9,5-20") is None
    assert tokens.parse_spans("") is None and tokens.parse_spans("0-9,10-20") == ((0, 9), (10, 20))


def test_v2_ranges_merge_only_where_the_files_chunks_touch() -> None:
    from releasehub.xet.downloads import merged_chunk_ranges

    assert merged_chunk_ranges([(0, 1), (2, 4), (0, 1)]) == [(0, 1), (2, 4)]  # chunk 1 stays out
    assert merged_chunk_ranges([(3, 43), (1, 4), (43, 50)]) == [(1, 50)]
    assert merged_chunk_ranges([]) == []
