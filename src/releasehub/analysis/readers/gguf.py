"""A streaming GGUF header reader (versions 2 and 3, little-endian) over any `ByteSource`.

GGUF puts key/values, then tensor descriptions, then the aligned tensor data in one file. The
header has no length field, and the tokenizer arrays in it can run to several megabytes, so
the reader pulls growing chunks (1 MiB, then 2, 4, ...) from the current position and parses
as it goes: a remote file costs a few ranged reads, never the weights. Long arrays are skipped
(fixed-size ones without even being fetched) and reported only by element type and length.

Type ids, block sizes and file-type names come from the `gguf` package, so new quantisation
types need a package upgrade, not a code change here.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gguf

from releasehub.analysis.readers.safetensors import TensorInfo, WeightsSummary, bits_per_parameter
from releasehub.analysis.readers.source import AnalysisError, ByteSource

__all__ = ["GGUFHeader", "gguf_config", "read_gguf_header", "split_base_name", "summarize_gguf"]

FIRST_CHUNK = 1 << 20
#: Arrays longer than this are described ({"type", "length"}) rather than kept.
MAX_KEPT_ARRAY = 64
_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_MAX_DIMS = 4
_MAX_NESTING = 8

_VT = gguf.GGUFValueType
_SCALARS: dict[int, struct.Struct] = {
    _VT.UINT8: struct.Struct("<B"),
    _VT.INT8: struct.Struct("<b"),
    _VT.UINT16: struct.Struct("<H"),
    _VT.INT16: struct.Struct("<h"),
    _VT.UINT32: struct.Struct("<I"),
    _VT.INT32: struct.Struct("<i"),
    _VT.FLOAT32: struct.Struct("<f"),
    _VT.BOOL: struct.Struct("<?"),
    _VT.UINT64: struct.Struct("<Q"),
    _VT.INT64: struct.Struct("<q"),
    _VT.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
#: The smallest encoding of a string (its length) and of an array (element type and length).
_MIN_STRING = 8
_MIN_ARRAY = 12
_SPLIT_SUFFIX = re.compile(r"-(\d{5})-of-(\d{5})$")


@dataclass(frozen=True)
class GGUFHeader:
    """A parsed GGUF header.

    `tensors[i].dtype` is the GGML type name ("Q4_K") and `shape` is in GGUF order (fastest
    dimension first), as stored. `header_bytes` is the size of the header (key/values and tensor
    descriptions); `data_offset` is where tensor data starts, after alignment padding.
    """

    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    header_bytes: int
    data_offset: int


def _invalid(name: str, problem: str) -> AnalysisError:
    return AnalysisError(f"{name} is not a valid GGUF file: {problem}. Download it again or re-convert it.")


class _Cursor:
    """Sequential little-endian reads over a source, fetched in chunks that double each time.

    Only the unread tail of the last chunk is kept, so memory stays at one chunk however large
    the header is, and skipped regions past the buffer are never fetched.
    """

    def __init__(self, source: ByteSource, first_chunk: int = FIRST_CHUNK) -> None:
        self._source = source
        self._size = source.size
        self._buffer = b""
        self._start = 0
        self._chunk = first_chunk
        self.position = 0

    @property
    def remaining(self) -> int:
        return self._size - self.position

    def _ensure(self, n: int) -> None:
        """Make bytes [position, position + n) available in the buffer."""
        end = self.position + n
        if end > self._size:
            raise _invalid(self._source.name, f"the header runs past the end of the file at byte {self._size} "
                                              "(it is truncated)")
        offset = self.position - self._start
        if 0 <= offset and end <= self._start + len(self._buffer):
            return
        keep = self._buffer[offset:] if 0 <= offset < len(self._buffer) else b""
        fetch_from = self.position + len(keep)
        want = min(max(self._chunk, end - fetch_from), self._size - fetch_from)
        self._buffer = keep + self._source.read(fetch_from, want)
        self._start = self.position
        self._chunk *= 2

    def unpack(self, fmt: struct.Struct) -> Any:
        self._ensure(fmt.size)
        (value,) = fmt.unpack_from(self._buffer, self.position - self._start)
        self.position += fmt.size
        return value

    def take(self, n: int) -> bytes:
        self._ensure(n)
        offset = self.position - self._start
        self.position += n
        return self._buffer[offset : offset + n]

    def skip(self, n: int) -> None:
        if n > self.remaining:
            raise _invalid(self._source.name, f"a value of {n} bytes at byte {self.position} runs past the end "
                                              "of the file")
        self.position += n

    def skip_strings(self, count: int) -> None:
        """Skip `count` length-prefixed strings; the inner loop walks the buffer without copying."""
        while count:
            self._ensure(_U64.size)
            buffer, offset = self._buffer, self.position - self._start
            end = len(buffer)
            while count and offset + 8 <= end:
                (length,) = _U64.unpack_from(buffer, offset)
                if offset + 8 + length > end:
                    break
                offset += 8 + length
                count -= 1
            self.position = self._start + offset
            if count and offset + 8 <= end:
                # This string runs past the buffer: skip it by position.
                self.position += 8
                self.skip(_U64.unpack_from(buffer, offset)[0])
                count -= 1


class _Parser:
    def __init__(self, source: ByteSource) -> None:
        self.name = source.name
        self.cursor = _Cursor(source)

    def string(self) -> str:
        length = self.cursor.unpack(_U64)
        if length > self.cursor.remaining:
            raise _invalid(self.name, f"a string at byte {self.cursor.position} claims {length} bytes, more than "
                                      "the file holds")
        return self.cursor.take(length).decode("utf-8", errors="replace")

    def value_type(self) -> int:
        raw = self.cursor.unpack(_U32)
        if raw not in _SCALARS and raw not in (_VT.STRING, _VT.ARRAY):
            raise _invalid(self.name, f"unknown value type {raw} at byte {self.cursor.position - 4}")
        return int(raw)

    def value(self, vtype: int, depth: int = 0) -> Any:
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            return self.cursor.unpack(scalar)
        if vtype == _VT.STRING:
            return self.string()
        return self.array(depth + 1)

    def array(self, depth: int) -> Any:
        if depth > _MAX_NESTING:
            raise _invalid(self.name, f"arrays nested more than {_MAX_NESTING} deep")
        element = self.value_type()
        length = self.cursor.unpack(_U64)
        size = _SCALARS[element].size if element in _SCALARS else \
            _MIN_STRING if element == _VT.STRING else _MIN_ARRAY
        if length * size > self.cursor.remaining:
            raise _invalid(self.name, f"an array of {length} {_VT(element).name} values does not fit in the file")
        if length <= MAX_KEPT_ARRAY:
            return [self.value(element, depth) for _ in range(length)]
        self.skip_values(element, length, depth)
        return {"type": _VT(element).name, "length": length}

    def skip_values(self, element: int, length: int, depth: int) -> None:
        if element in _SCALARS:
            self.cursor.skip(length * _SCALARS[element].size)
        elif element == _VT.STRING:
            self.cursor.skip_strings(length)
        else:
            for _ in range(length):
                inner = self.value_type()
                count = self.cursor.unpack(_U64)
                if depth + 1 > _MAX_NESTING:
                    raise _invalid(self.name, f"arrays nested more than {_MAX_NESTING} deep")
                self.skip_values(inner, count, depth + 1)

    def preamble(self) -> tuple[int, int, int]:
        magic = self.cursor.take(4)
        if magic != _MAGIC:
            if magic == b"vers":
                raise AnalysisError(f"{self.name} is a Git LFS pointer, not the model. Fetch the real file "
                                    "(`git lfs pull`) or download it with `hf download`.")
            raise _invalid(self.name, f"it starts with {magic!r}, not the GGUF magic")
        version = self.cursor.unpack(_U32)
        if version not in _SUPPORTED_VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            if swapped in _SUPPORTED_VERSIONS:
                raise AnalysisError(f"{self.name} is a big-endian GGUF file; only little-endian files are "
                                    "supported. Use the little-endian build of the model.")
            if version == 1:
                raise AnalysisError(f"{self.name} is a GGUF version 1 file, obsolete since 2023; re-convert it "
                                    "with a current llama.cpp.")
            raise AnalysisError(f"{self.name} is GGUF version {version}; releasehub reads versions 2 and 3.")
        tensor_count = self.cursor.unpack(_U64)
        kv_count = self.cursor.unpack(_U64)
        if kv_count * (_MIN_STRING + 4) > self.cursor.remaining or \
                tensor_count * (_MIN_STRING + 4 + 4 + 8) > self.cursor.remaining:
            raise _invalid(self.name, f"it claims {kv_count} key/values and {tensor_count} tensors, more than "
                                      "the file can hold")
        return version, tensor_count, kv_count

    def metadata(self, count: int) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        for _ in range(count):
            key = self.string()
            if key in metadata:
                raise _invalid(self.name, f"the key {key!r} appears twice")
            metadata[key] = self.value(self.value_type())
        return metadata

    def tensor(self) -> tuple[TensorInfo, int]:
        name = self.string()
        n_dims = self.cursor.unpack(_U32)
        if not 1 <= n_dims <= _MAX_DIMS:
            raise _invalid(self.name, f"tensor {name!r} has {n_dims} dimensions; GGUF allows 1 to {_MAX_DIMS}")
        shape = tuple(self.cursor.unpack(_U64) for _ in range(n_dims))
        type_id = self.cursor.unpack(_U32)
        offset = self.cursor.unpack(_U64)
        try:
            ggml_type = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            raise AnalysisError(f"{self.name}: tensor {name!r} has GGML type id {type_id}, which the installed "
                                "gguf package does not know. Upgrade it (`pip install -U gguf`).") from None
        block, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
        if shape[0] % block:
            raise _invalid(self.name, f"tensor {name!r} has rows of {shape[0]} values, not a multiple of the "
                                      f"{block}-value blocks of {ggml_type.name}")
        nbytes = math.prod(shape) // block * type_size
        return TensorInfo(name, ggml_type.name, shape, nbytes), offset


def _alignment(name: str, metadata: Mapping[str, Any]) -> int:
    value = metadata.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value & (value - 1):
        raise _invalid(name, f"general.alignment is {value!r}; it must be a positive power of two")
    return value


def read_gguf_header(source: ByteSource) -> GGUFHeader:
    """Parse the header of a GGUF file: key/values and tensor descriptions, never tensor data."""
    parser = _Parser(source)
    version, tensor_count, kv_count = parser.preamble()
    metadata = parser.metadata(kv_count)
    alignment = _alignment(source.name, metadata)
    described = [parser.tensor() for _ in range(tensor_count)]
    header_bytes = parser.cursor.position
    data_offset = -(-header_bytes // alignment) * alignment
    for tensor, offset in described:
        if data_offset + offset + tensor.nbytes > source.size:
            raise _invalid(source.name, f"the data of tensor {tensor.name!r} runs past the end of the file "
                                        "(it is truncated)")
    return GGUFHeader(version, metadata, tuple(t for t, _ in described), header_bytes, data_offset)


# ------------------------------------------------------------------------------- summaries


def split_base_name(path: str) -> str:
    """The model a (possibly split) GGUF file belongs to: `Q4/m-00001-of-00003.gguf` -> `Q4/m`."""
    stem = path.removesuffix(".gguf")
    return _SPLIT_SUFFIX.sub("", stem)


def _split_number(header: GGUFHeader, key: str) -> int | None:
    value = header.metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ordered_parts(headers: Mapping[str, GGUFHeader]) -> list[tuple[str, GGUFHeader]]:
    """The parts of one split model in split order, checked complete; a single file passes as is."""
    items = sorted(headers.items())
    if len(items) == 1:
        return items
    numbers = {file: _split_number(h, gguf.Keys.Split.LLM_KV_SPLIT_NO) for file, h in items}
    counts = {_split_number(h, gguf.Keys.Split.LLM_KV_SPLIT_COUNT) for _, h in items}
    known = {file: number for file, number in numbers.items() if number is not None}
    (count,) = counts if len(counts) == 1 else (None,)
    if count is None or len(known) != len(items):
        raise AnalysisError(f"{', '.join(headers)} are not the parts of one split GGUF model; summarise each "
                            "model on its own.")
    present = sorted(known.values())
    if present != list(range(count)):
        raise AnalysisError(f"The split GGUF model {split_base_name(items[0][0])} has {count} parts but "
                            f"{len(items)} were given (split numbers {present}); all parts are needed.")
    return sorted(items, key=lambda item: known[item[0]])


def _file_type_name(metadata: Mapping[str, Any]) -> str | None:
    value = metadata.get(gguf.Keys.General.FILE_TYPE)
    if not isinstance(value, int):
        return None
    try:
        file_type = gguf.LlamaFileType(value)
    except ValueError:
        return None
    if file_type is gguf.LlamaFileType.GUESSED:
        return None
    return "F32" if file_type is gguf.LlamaFileType.ALL_F32 else file_type.name.removeprefix("MOSTLY_")


def summarize_gguf(headers: Mapping[str, GGUFHeader]) -> WeightsSummary:
    """Count the parameters of one GGUF model: a single file or all parts of a split one.

    GGUF quantisation blocks hold their scales inline, so every tensor element is a parameter
    and `non_parameter_bytes` is 0. `quantization` is the file type the converter recorded
    (general.file_type, "Q4_K_M"), else the tensor type holding most parameters.
    """
    if not headers:
        raise AnalysisError("No GGUF headers to summarise.")
    parts = _ordered_parts(headers)
    by_type: Counter[str] = Counter()
    seen: set[str] = set()
    stored = 0
    for file, header in parts:
        for tensor in header.tensors:
            if tensor.name in seen:
                raise AnalysisError(f"Tensor {tensor.name!r} appears twice in the parts of {file}; the split "
                                    "model is inconsistent.")
            seen.add(tensor.name)
            by_type[tensor.dtype] += tensor.numel
            stored += tensor.nbytes
    metadata = dict(parts[0][1].metadata)
    parameters = sum(by_type.values())
    common = by_type.most_common(1)[0][0] if by_type else None
    return WeightsSummary(
        format="gguf",
        files=tuple(file for file, _ in parts),
        tensors=len(seen),
        parameters=parameters,
        parameters_by_dtype=dict(sorted(by_type.items(), key=lambda item: (-item[1], item[0]))),
        stored_bytes=stored,
        non_parameter_bytes=0,
        quantization=_file_type_name(metadata) or common,
        bits_per_parameter=bits_per_parameter(stored, parameters),
        header_bytes=sum(h.header_bytes for _, h in parts),
        metadata=metadata,
    )


#: config.json key -> GGUF key template ({arch} is general.architecture).
_CONFIG_KEYS: dict[str, str] = {
    "num_hidden_layers": gguf.Keys.LLM.BLOCK_COUNT,
    "hidden_size": gguf.Keys.LLM.EMBEDDING_LENGTH,
    "intermediate_size": gguf.Keys.LLM.FEED_FORWARD_LENGTH,
    "moe_intermediate_size": gguf.Keys.LLM.EXPERT_FEED_FORWARD_LENGTH,
    "num_attention_heads": gguf.Keys.Attention.HEAD_COUNT,
    "num_key_value_heads": gguf.Keys.Attention.HEAD_COUNT_KV,
    "head_dim": gguf.Keys.Attention.KEY_LENGTH,
    "v_head_dim": gguf.Keys.Attention.VALUE_LENGTH,
    "q_lora_rank": gguf.Keys.Attention.Q_LORA_RANK,
    "kv_lora_rank": gguf.Keys.Attention.KV_LORA_RANK,
    "max_position_embeddings": gguf.Keys.LLM.CONTEXT_LENGTH,
    "num_local_experts": gguf.Keys.LLM.EXPERT_COUNT,
    "num_experts_per_tok": gguf.Keys.LLM.EXPERT_USED_COUNT,
    "n_shared_experts": gguf.Keys.LLM.EXPERT_SHARED_COUNT,
    "first_k_dense_replace": gguf.Keys.LLM.LEADING_DENSE_BLOCK_COUNT,
    "sliding_window": gguf.Keys.Attention.SLIDING_WINDOW,
    "rms_norm_eps": gguf.Keys.Attention.LAYERNORM_RMS_EPS,
    "layer_norm_eps": gguf.Keys.Attention.LAYERNORM_EPS,
    "rope_theta": gguf.Keys.Rope.FREQ_BASE,
}


def _vocab_size(header: GGUFHeader, arch: str) -> int | None:
    tokens = header.metadata.get(gguf.Keys.Tokenizer.LIST)
    if isinstance(tokens, dict):
        return int(tokens["length"])
    if isinstance(tokens, list):
        return len(tokens)
    declared = header.metadata.get(gguf.Keys.LLM.VOCAB_SIZE.format(arch=arch))
    if isinstance(declared, int):
        return declared
    for tensor in header.tensors:
        if tensor.name == "token_embd.weight" and len(tensor.shape) == 2:
            return tensor.shape[1]  # GGUF order: [hidden, vocab]
    return None


def gguf_config(header: GGUFHeader) -> dict[str, Any]:
    """A config.json-like dict from `{arch}.*` metadata, so GGUF models share the transformers code path.

    Only keys the file records are present. `tie_word_embeddings` is derived (no separate
    `output.weight`) only for an unsplit file, where every tensor is in this header.
    """
    arch = header.metadata.get(gguf.Keys.General.ARCHITECTURE)
    if not isinstance(arch, str) or not arch:
        raise AnalysisError("The GGUF file has no general.architecture; it is not a model llama.cpp can load "
                            "(for a split model, pass the first part).")
    config: dict[str, Any] = {"model_type": arch}
    for key, template in _CONFIG_KEYS.items():
        value = header.metadata.get(template.format(arch=arch))
        if value is not None:
            config[key] = value
    vocab = _vocab_size(header, arch)
    if vocab is not None:
        config["vocab_size"] = vocab
    names = {t.name for t in header.tensors}
    split_count = header.metadata.get(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, 1)
    if isinstance(split_count, int) and split_count <= 1 and "token_embd.weight" in names:
        config["tie_word_embeddings"] = "output.weight" not in names
    return config
