"""The hashes of the Xet protocol (hub-docs `docs/xet/hashing.md`, `api.md`).

Every hash is 32 raw bytes. As a string it is written word by word: each 8-byte word read as a
little-endian u64 and printed as 16 hex digits (`hash_hex`), which is not the bytes' usual hex.

- chunk hash: blake3 keyed with DATA_KEY over the chunk's bytes;
- xorb hash: the root of an aggregated tree over (chunk hash, size) pairs, whose nodes hash the
  lines `"{hash_hex} : {size}\\n"` of their children with blake3 keyed with INTERNAL_NODE_KEY;
  a group of children closes after at least 2 and at most 9 of them, at the first child from the
  third on whose last word is 0 modulo 4;
- file hash: the same tree's root, hashed once more with blake3 keyed with 32 zero bytes;
- term verification hash: blake3 keyed with VERIFICATION_KEY over the raw chunk hashes of the
  term's chunk range, concatenated.
"""

from __future__ import annotations

from typing import Sequence

from blake3 import blake3

DATA_KEY = bytes([
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
    157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
])
INTERNAL_NODE_KEY = bytes([
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
    93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
])
VERIFICATION_KEY = bytes([
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
    164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
])
ZERO_KEY = bytes(32)
EMPTY_HASH = bytes(32)

_MEAN_BRANCHING = 4
_MAX_GROUP = 2 * _MEAN_BRANCHING + 1

ChunkList = Sequence[tuple[bytes, int]]


def hash_hex(raw: bytes) -> str:
    """The protocol's string form of a 32-byte hash: each 8-byte word reversed, then hex."""
    if len(raw) != 32:
        raise ValueError("a Xet hash has 32 bytes")
    return b"".join(raw[i:i + 8][::-1] for i in range(0, 32, 8)).hex()


def hash_from_hex(text: str) -> bytes:
    """The raw bytes of a hash written by `hash_hex`; ValueError unless 64 lowercase hex digits."""
    if len(text) != 64 or text != text.lower():
        raise ValueError("a Xet hash is 64 lowercase hex digits")
    word = bytes.fromhex(text)
    return b"".join(word[i:i + 8][::-1] for i in range(0, 32, 8))


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _is_cut(raw: bytes) -> bool:
    # The hash's last word as a little-endian u64, modulo the mean branching factor.
    return raw[24] % _MEAN_BRANCHING == 0


def _group_end(nodes: ChunkList, start: int) -> int:
    """Where the group of children starting at `start` ends (exclusive)."""
    left = len(nodes) - start
    if left <= 2:
        return len(nodes)
    end = min(_MAX_GROUP, left)
    for i in range(2, end):
        if _is_cut(nodes[start + i][0]):
            return start + i + 1
    return start + end


def _merge(nodes: ChunkList) -> tuple[bytes, int]:
    text = "".join(f"{hash_hex(raw)} : {size}\n" for raw, size in nodes)
    return blake3(text.encode("ascii"), key=INTERNAL_NODE_KEY).digest(), sum(size for _, size in nodes)


def aggregated_hash(chunks: ChunkList) -> bytes:
    """The root of the aggregated tree over (chunk hash, unpacked size) pairs."""
    if not chunks:
        return EMPTY_HASH
    level = list(chunks)
    while len(level) > 1:
        merged = []
        start = 0
        while start < len(level):
            end = _group_end(level, start)
            merged.append(_merge(level[start:end]))
            start = end
        level = merged
    return level[0][0]


def xorb_hash(chunks: ChunkList) -> bytes:
    return aggregated_hash(chunks)


def file_hash(chunks: ChunkList, salt: bytes = ZERO_KEY) -> bytes:
    if not chunks:
        return EMPTY_HASH
    return blake3(aggregated_hash(chunks), key=salt).digest()


def verification_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    return blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()
