"""Xorbs (hub-docs `docs/xet/xorb.md`): a series of chunks, each an 8-byte header and its data.

Header: version (u8, 0) | compressed size (u24 LE) | compression type (u8) | uncompressed size
(u24 LE). Types: 0 none, 1 LZ4 frame, 2 byte grouping by 4 then LZ4 frame. Clients upload xorbs
without a footer. `read_xorb` checks every header, decompresses every chunk to exactly its
declared size (never more: decompression is bounded), recomputes every chunk hash and the xorb
hash, and returns the xorb's index; it never trusts a size or hash the client declared.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import lz4.frame

from releasehub.errors import BadRequest
from releasehub.xet.hashing import chunk_hash, xorb_hash

HEADER_SIZE = 8
NONE, LZ4, BG4_LZ4 = 0, 1, 2
MAX_CHUNK_BYTES = 128 * 1024  # the chunker's largest chunk (2 x the 64 KiB target)
MAX_PACKED_CHUNK_BYTES = 2 * MAX_CHUNK_BYTES  # a compressed chunk is never this large honestly
MAX_CHUNKS = 8 * 1024  # the client's largest xorb, in chunks
INDEX_ENTRY = struct.Struct("<32sII")  # chunk hash, unpacked size, offset of its header in the xorb
SINK_BATCH = 8 * 1024 * 1024



@dataclass(frozen=True)
class ChunkHeader:
    version: int
    packed_size: int
    scheme: int
    size: int

    @classmethod
    def parse(cls, raw: bytes) -> "ChunkHeader":
        return cls(raw[0], int.from_bytes(raw[1:4], "little"), raw[4], int.from_bytes(raw[5:8], "little"))

    def pack(self) -> bytes:
        return (bytes([self.version]) + self.packed_size.to_bytes(3, "little") + bytes([self.scheme])
                + self.size.to_bytes(3, "little"))


@dataclass(frozen=True)
class XorbIndex:
    """What the server knows of a verified xorb, from its own reading of it."""

    hash: bytes
    chunk_hashes: list[bytes]
    sizes: list[int]  # unpacked size of each chunk
    offsets: list[int]  # where each chunk's header starts in the xorb
    packed_bytes: int  # the xorb's serialized length

    @property
    def unpacked_bytes(self) -> int:
        return sum(self.sizes)

    def pack(self) -> bytes:
        return b"".join(INDEX_ENTRY.pack(h, s, o) for h, s, o in zip(self.chunk_hashes, self.sizes, self.offsets))

    @classmethod
    def unpack(cls, hash_: bytes, raw: bytes, packed_bytes: int) -> "XorbIndex":
        hashes, sizes, offsets = [], [], []
        for h, s, o in INDEX_ENTRY.iter_unpack(raw):
            hashes.append(h)
            sizes.append(s)
            offsets.append(o)
        return cls(hash_, hashes, sizes, offsets, packed_bytes)


def bg4_regroup(data: bytes | memoryview) -> bytes:
    """Undo byte grouping: the data holds the 1st, 2nd, 3rd and 4th byte of every 4-byte group,
    group after group; a remainder of n % 4 bytes went to the first groups, one each."""
    n = len(data)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > i else 0) for i in range(4)]
    out = bytearray(n)
    start = 0
    for i, size in enumerate(sizes):
        out[i::4] = data[start:start + size]
        start += size
    return bytes(out)


def bg4_group(data: bytes) -> bytes:
    """Byte grouping, as a client does it (for tests and for building xorbs)."""
    return b"".join(data[i::4] for i in range(4))


def _lz4_decompress(packed: bytes | memoryview, size: int, index: int) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(packed, max_length=size + 1)
    except RuntimeError:
        raise BadRequest(f"Chunk {index} is not a valid LZ4 frame.") from None
    if len(out) != size or not decompressor.eof or decompressor.unused_data:
        raise BadRequest(f"Chunk {index} does not decompress to its declared {size} bytes.")
    return bytes(out)


def unpack_chunk(header: ChunkHeader, packed: bytes | memoryview, index: int) -> bytes | memoryview:
    if header.scheme == NONE:
        if header.packed_size != header.size:
            raise BadRequest(f"Chunk {index} is stored uncompressed but declares two sizes.")
        return packed
    if header.scheme == LZ4:
        return _lz4_decompress(packed, header.size, index)
    if header.scheme == BG4_LZ4:
        return bg4_regroup(_lz4_decompress(packed, header.size, index))
    raise BadRequest(f"Chunk {index} has unknown compression type {header.scheme}.")


def check_header(header: ChunkHeader, index: int) -> None:
    if header.version != 0:
        raise BadRequest(f"Chunk {index} has header version {header.version}; only 0 is known.")
    if not 0 < header.size <= MAX_CHUNK_BYTES:
        raise BadRequest(f"Chunk {index} declares {header.size} bytes; chunks hold 1 to {MAX_CHUNK_BYTES}.")
    if not 0 < header.packed_size <= MAX_PACKED_CHUNK_BYTES:
        raise BadRequest(f"Chunk {index} declares {header.packed_size} packed bytes.")


def iter_chunks(stream: BinaryIO, limit: int | None = None) -> Iterator[tuple[int, bytes | memoryview]]:
    """(offset, unpacked data) of each chunk from the stream's position, checked; `limit` chunks at most."""
    offset = stream.tell()
    index = 0
    while limit is None or index < limit:
        raw = stream.read(HEADER_SIZE)
        if not raw:
            return
        if len(raw) < HEADER_SIZE:
            raise BadRequest(f"The xorb ends inside the header of chunk {index}.")
        header = ChunkHeader.parse(raw)
        check_header(header, index)
        packed = stream.read(header.packed_size)
        if len(packed) != header.packed_size:
            raise BadRequest(f"The xorb ends inside chunk {index}.")
        yield offset, unpack_chunk(header, packed, index)
        offset += HEADER_SIZE + header.packed_size
        index += 1


def iter_unpacked(stream: BinaryIO, index: XorbIndex, start: int, end: int,
                  span_bytes: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    """The unpacked data of chunks [start, end) of a stored xorb, in batches: each batch one read
    of at most `span_bytes` of the xorb (at least one chunk) into a buffer reused for every read
    (memory already touched costs a fraction of fresh allocations), its chunks unpacked and joined
    into one new `bytes` (the only copy; the blob writer's hashing thread takes it as it is). The
    xorb was verified when stored; every header is still checked against the server's index, and
    decompression stays bounded, so a damaged file fails here rather than producing other bytes."""
    offsets = index.offsets
    largest = max(_chunk_end(index, n) - offsets[n] for n in range(start, end)) if end > start else 0
    raw = bytearray(max(span_bytes, largest))
    raw_view = memoryview(raw)
    chunk = start
    while chunk < end:
        first = offsets[chunk]
        last = chunk + 1
        while last < end and _chunk_end(index, last) - first <= span_bytes:
            last += 1
        length = _chunk_end(index, last - 1) - first
        stream.seek(first)
        got = stream.readinto(raw_view[:length])  # type: ignore[attr-defined]
        if got != length:
            raise BadRequest(f"Stored xorb {index.hash.hex()} ends before its chunk {last - 1}.")
        pieces: list[bytes | memoryview] = []
        for number in range(chunk, last):
            at = offsets[number] - first
            header = ChunkHeader.parse(bytes(raw_view[at:at + HEADER_SIZE]))
            check_header(header, number)
            packed = raw_view[at + HEADER_SIZE:at + HEADER_SIZE + header.packed_size]
            if header.size != index.sizes[number] or len(packed) != header.packed_size:
                raise BadRequest(f"Stored chunk {number} of xorb {index.hash.hex()} does not match its index.")
            pieces.append(unpack_chunk(header, packed, number))
        yield b"".join(pieces)
        chunk = last


def _chunk_end(index: XorbIndex, number: int) -> int:
    """Where chunk `number` ends in the xorb: the next chunk's header, or the xorb's end."""
    return index.offsets[number + 1] if number + 1 < len(index.offsets) else index.packed_bytes


def read_xorb(stream: BinaryIO, expected_hash: bytes,
              sink: Callable[[list[bytes]], None] | None = None) -> XorbIndex:
    """Verify a whole xorb body and index it; BadRequest unless it hashes to `expected_hash`.
    `sink`, when given, receives the unpacked data of every chunk in order, in batches of about
    8 MiB, as it is checked: before the xorb hash is known, so it must be able to forget them."""
    hashes: list[bytes] = []
    sizes: list[int] = []
    offsets: list[int] = []
    end = 0
    batch: list[bytes] = []
    batched = 0
    for offset, data in iter_chunks(stream):
        if len(hashes) >= MAX_CHUNKS:
            raise BadRequest(f"A xorb holds at most {MAX_CHUNKS} chunks.")
        hashes.append(chunk_hash(data))
        sizes.append(len(data))
        offsets.append(offset)
        end = stream.tell()
        if sink is not None:
            batch.append(data if type(data) is bytes else bytes(data))
            batched += len(data)
            if batched >= SINK_BATCH:
                sink(batch)
                batch, batched = [], 0
    if sink is not None and batch:
        sink(batch)
    if not hashes:
        raise BadRequest("The xorb holds no chunk.")
    actual = xorb_hash(list(zip(hashes, sizes)))
    if actual != expected_hash:
        from releasehub.xet.hashing import hash_hex

        raise BadRequest(f"The xorb's chunks hash to {hash_hex(actual)}, not to {hash_hex(expected_hash)} "
                          "named in the path; nothing was stored.")
    return XorbIndex(expected_hash, hashes, sizes, offsets, end)


def build_xorb(chunks: list[bytes], scheme: int = LZ4) -> bytes:
    """Serialize chunks as a client does (for tests and tools)."""
    out = bytearray()
    for data in chunks:
        if scheme == LZ4:
            packed = lz4.frame.compress(data)
        elif scheme == BG4_LZ4:
            packed = lz4.frame.compress(bg4_group(data))
        else:
            packed = data
        out += ChunkHeader(0, len(packed), scheme, len(data)).pack() + packed
    return bytes(out)
