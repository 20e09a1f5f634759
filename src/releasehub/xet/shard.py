"""Shards (hub-docs `docs/xet/shard.md`): the files of an upload, as terms over xorb chunk ranges.

Layout (all integers little-endian, every record 48 bytes):
header (tag, version 2, footer size) · file info section: per file a header (file hash, flags,
number of terms), its terms (xorb hash, flags, unpacked bytes, chunk start, chunk end), then,
when flagged, one verification entry per term (range hash) and one metadata extension (sha256),
closed by a bookend (32 bytes 0xFF, 16 bytes 0) · CAS info section: per xorb a header (xorb hash,
flags, chunks, bytes, bytes on disk) and one entry per chunk, closed by a bookend · a footer of
`footer size` bytes (uploads omit it).

`parse_shard` checks the structure only; what the records claim is checked by the service
against the server's own index of each xorb. The CAS info section is read past, never trusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from releasehub.errors import BadRequest

HEADER_TAG = b"HFRepoMetaData\x00" + bytes([
    85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])
HEADER_VERSION = 2
FOOTER_SIZE = 200
RECORD = 48
BOOKEND = b"\xff" * 32 + b"\x00" * 16
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30

_HEADER = struct.Struct("<32sQQ")
_FILE_HEADER = struct.Struct("<32sII8x")
_TERM = struct.Struct("<32sIIII")
_VERIFICATION = struct.Struct("<32s16x")
_CAS_HEADER = struct.Struct("<32sIIII")

assert len(HEADER_TAG) == 32



@dataclass(frozen=True)
class Term:
    xorb_hash: bytes
    unpacked_bytes: int
    chunk_start: int
    chunk_end: int  # exclusive


@dataclass(frozen=True)
class FileInfo:
    file_hash: bytes
    terms: list[Term]
    verification: list[bytes] | None  # one range hash per term
    sha256: bytes | None  # as stored: in the protocol's word order


@dataclass(frozen=True)
class Shard:
    files: list[FileInfo]
    xorbs: list[bytes]  # hashes listed in the CAS info section (informational)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def record(self, what: str) -> bytes:
        if self.pos + RECORD > len(self.data):
            raise BadRequest(f"The shard ends inside {what}.")
        raw = self.data[self.pos:self.pos + RECORD]
        self.pos += RECORD
        return raw

    def records(self, count: int, what: str) -> list[bytes]:
        if self.pos + count * RECORD > len(self.data):
            raise BadRequest(f"The shard ends inside {what}.")
        return [self.record(what) for _ in range(count)]


def parse_shard(data: bytes, max_files: int = 100_000, max_terms: int = 10_000_000) -> Shard:
    reader = _Reader(data)
    if len(data) < _HEADER.size:
        raise BadRequest("The shard is shorter than its header.")
    tag, version, footer_size = _HEADER.unpack_from(data, 0)
    reader.pos = _HEADER.size
    if tag != HEADER_TAG:
        raise BadRequest("The shard does not start with the MDB shard tag.")
    if version != HEADER_VERSION:
        raise BadRequest(f"Shard header version {version}; only {HEADER_VERSION} is served.")
    if footer_size not in (0, FOOTER_SIZE):
        raise BadRequest(f"Shard footer size {footer_size}; expected 0 (uploads omit it) or {FOOTER_SIZE}.")
    files: list[FileInfo] = []
    total_terms = 0
    while True:
        raw = reader.record("the file info section")
        if raw == BOOKEND:
            break
        if raw[:32] == BOOKEND[:32]:
            raise BadRequest("Malformed file info bookend.")
        file_hash, flags, count = _FILE_HEADER.unpack(raw)
        if len(files) >= max_files:
            raise BadRequest(f"A shard may describe at most {max_files} files.")
        total_terms += count
        if total_terms > max_terms:
            raise BadRequest(f"A shard may hold at most {max_terms} terms.")
        terms = []
        for entry in reader.records(count, "a file's terms"):
            xorb, _flags, unpacked, start, end = _TERM.unpack(entry)
            terms.append(Term(xorb, unpacked, start, end))
        verification = None
        if flags & FLAG_VERIFICATION:
            verification = [_VERIFICATION.unpack(entry)[0]
                            for entry in reader.records(count, "a file's verification entries")]
        sha256 = None
        if flags & FLAG_METADATA_EXT:
            sha256 = _VERIFICATION.unpack(reader.record("a file's metadata extension"))[0]
        files.append(FileInfo(file_hash, terms, verification, sha256))
    xorbs: list[bytes] = []
    while True:
        raw = reader.record("the CAS info section")
        if raw == BOOKEND:
            break
        xorb, _flags, count, _size, _on_disk = _CAS_HEADER.unpack(raw)
        reader.records(count, "a xorb's chunk entries")
        xorbs.append(xorb)
    if len(data) - reader.pos != footer_size:
        raise BadRequest(f"The shard has {len(data) - reader.pos} bytes after its CAS info section; "
                           f"its header declares a footer of {footer_size}.")
    return Shard(files, xorbs)


def build_shard(files: list[FileInfo], cas: Sequence[tuple[bytes, list[tuple[bytes, int]]]] = ()) -> bytes:
    """Serialize a shard as a client uploads it, without footer (for tests and tools)."""
    out = bytearray(_HEADER.pack(HEADER_TAG, HEADER_VERSION, 0))
    for info in files:
        flags = (FLAG_VERIFICATION if info.verification is not None else 0) | (
            FLAG_METADATA_EXT if info.sha256 is not None else 0)
        out += _FILE_HEADER.pack(info.file_hash, flags, len(info.terms))
        for term in info.terms:
            out += _TERM.pack(term.xorb_hash, 0, term.unpacked_bytes, term.chunk_start, term.chunk_end)
        for range_hash in info.verification or []:
            out += _VERIFICATION.pack(range_hash)
        if info.sha256 is not None:
            out += _VERIFICATION.pack(info.sha256)
    out += BOOKEND
    for xorb, chunks in cas:
        out += _CAS_HEADER.pack(xorb, 0, len(chunks), sum(s for _, s in chunks), 0)
        offset = 0
        for h, size in chunks:
            out += struct.pack("<32sII8x", h, offset, size)
            offset += size
    out += BOOKEND
    return bytes(out)
