"""The safetensors header reader, and the parameter count of a (possibly quantised) checkpoint.

A safetensors file is an 8-byte little-endian header length, a JSON header that maps each
tensor name to its dtype, shape and byte span, then the raw data. Everything analysis needs is
in the header, so `read_header` reads the start of the file once (twice when the header is
longer than that first read) whatever the file size: that is what makes a 700 GB checkpoint
on a remote Hub cheap to profile.

Quantised checkpoints store weights packed (eight 4-bit values in one int32) next to scales
and zero points. A naive element count is then wrong both ways: packed tensors hide most of the
parameters and the scales add some that are not. `summarize_safetensors` unpacks the known
schemes so that `parameters` is the count of the model's parameters, and everything else is
`non_parameter_bytes`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from releasehub.analysis.readers.source import AnalysisError, ByteSource

__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER_BYTES",
    "SafetensorsHeader",
    "TensorInfo",
    "WeightsSummary",
    "parse_index",
    "read_header",
    "summarize_safetensors",
]

#: Bits per element of every dtype the safetensors format defines.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

#: The safetensors library refuses larger headers; so do we, before allocating anything.
MAX_HEADER_BYTES = 100 << 20

_INTEGER_DTYPES = frozenset({"U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"})
_FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2"})


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as its file describes it. `dtype` is the stored type; `nbytes` its data size."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed header. `header_bytes` counts the 8-byte length too: it is what was read."""

    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    header_bytes: int
    data_bytes: int


@dataclass(frozen=True)
class WeightsSummary:
    """What the weights of a release are, learnt from headers only. Sizes are in bytes."""

    format: str
    files: tuple[str, ...]
    tensors: int
    parameters: int
    parameters_by_dtype: dict[str, int]
    stored_bytes: int
    non_parameter_bytes: int
    quantization: str | None
    bits_per_parameter: float | None
    header_bytes: int
    metadata: dict[str, Any]


def bits_per_parameter(stored_bytes: int, parameters: int) -> float | None:
    """Stored bits per parameter (scales included), or None for a checkpoint without parameters."""
    return round(stored_bytes * 8 / parameters, 3) if parameters else None


# ---------------------------------------------------------------------------------- header


def _invalid(name: str, problem: str) -> AnalysisError:
    return AnalysisError(
        f"{name} is not a valid safetensors file: {problem}. Download it again, or re-save it with the "
        "safetensors library."
    )


def _header_length(source: ByteSource, prefix: bytes) -> int:
    if prefix.startswith(b"version "):
        raise AnalysisError(
            f"{source.name} is a Git LFS pointer, not the weights. Fetch the real file (`git lfs pull`) "
            "or download it with `hf download`."
        )
    length = int.from_bytes(prefix, "little")
    if length < 2:
        raise _invalid(source.name, f"the header length is {length} bytes, too small for a JSON object")
    if length > MAX_HEADER_BYTES:
        raise _invalid(source.name, f"the header length field says {length} bytes, more than the "
                                    f"{MAX_HEADER_BYTES >> 20} MiB limit (is this a safetensors file at all?)")
    if length > source.size - 8:
        raise _invalid(source.name, f"the header length field says {length} bytes but the file has only "
                                    f"{source.size} bytes (it is truncated)")
    return length


def _parse_header_json(name: str, raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid(name, "the header is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _invalid(name, f"the header is not valid JSON ({exc.msg} at byte {exc.pos})") from None
    if not isinstance(document, dict):
        raise _invalid(name, f"the header is a JSON {type(document).__name__}, not an object")
    return document


def _metadata(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(name, "__metadata__ must be an object of string values")
    return dict(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(name: str, tensor: str, entry: Any, data_bytes: int) -> tuple[TensorInfo, int, int]:
    """A validated tensor entry and its (begin, end) span within the data region."""
    if not isinstance(entry, dict):
        raise _invalid(name, f"the entry of tensor {tensor!r} is not an object")
    missing = [key for key in ("dtype", "shape", "data_offsets") if key not in entry]
    if missing:
        raise _invalid(name, f"tensor {tensor!r} has no {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BITS:
        raise _invalid(name, f"tensor {tensor!r} has unknown dtype {dtype!r} (known: {', '.join(DTYPE_BITS)}); "
                             "if a newer safetensors added it, releasehub needs to learn it too")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _invalid(name, f"tensor {tensor!r} has shape {shape!r}; expected a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _invalid(name, f"tensor {tensor!r} has data_offsets {offsets!r}; expected [begin, end]")
    begin, end = offsets
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise _invalid(name, f"tensor {tensor!r} of {dtype} with shape {shape} does not fill whole bytes")
    nbytes = bits // 8
    if end - begin != nbytes:
        raise _invalid(name, f"tensor {tensor!r} spans bytes {begin}..{end} ({end - begin} bytes) but "
                             f"{dtype} with shape {shape} needs {nbytes}")
    if end > data_bytes:
        raise _invalid(name, f"tensor {tensor!r} ends at data byte {end}, past the end of the file (the data "
                             f"region holds {data_bytes} bytes; the file is truncated)")
    return TensorInfo(tensor, dtype, tuple(shape), nbytes), begin, end


def _check_no_overlap(name: str, spans: list[tuple[int, int, str]]) -> None:
    """Overlapping tensors would make the stored size a lie (and the safetensors library refuses them)."""
    previous_end, previous = 0, ""
    for begin, end, tensor in sorted(spans):
        if begin < previous_end:
            raise _invalid(name, f"tensors {previous!r} and {tensor!r} overlap")
        if end > begin:
            previous_end, previous = end, tensor


def prefetch_bytes(size: int) -> int:
    """How much of a file's start the first read asks for, hoping the whole header is in it.

    One two-hundred-thousandth of the file, between 4 KiB and 256 KiB: a 5 GB shard's header
    (tens of KB) arrives with the length in one request, and the bytes read past the header stay
    under 0.0005% of the file. A longer header costs one more read, for exactly the rest.
    """
    return min(size, max(4 << 10, min(256 << 10, size // 200_000)))


def read_header(source: ByteSource) -> SafetensorsHeader:
    """Parse and validate the header of a safetensors file in one read, or two for a long header."""
    first = source.read(0, max(8, prefetch_bytes(source.size))) if source.size >= 8 else source.read(0, 8)
    length = _header_length(source, first[:8])
    if 8 + length <= len(first):
        raw = first[8 : 8 + length]
    else:
        raw = first[8:] + source.read(len(first), 8 + length - len(first))
    document = _parse_header_json(source.name, raw)
    metadata = _metadata(source.name, document.pop("__metadata__", None))
    data_bytes = source.size - 8 - length
    tensors: list[TensorInfo] = []
    spans: list[tuple[int, int, str]] = []
    for tensor, entry in document.items():
        info, begin, end = _tensor(source.name, tensor, entry, data_bytes)
        tensors.append(info)
        spans.append((begin, end, tensor))
    _check_no_overlap(source.name, spans)
    return SafetensorsHeader(tuple(tensors), metadata, 8 + length, data_bytes)


def parse_index(text: str, name: str = "model.safetensors.index.json") -> list[str]:
    """The shard files a sharded checkpoint's index names, in order of first appearance, each once."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}); download it again.") \
            from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise AnalysisError(f"{name} has no weight_map object mapping tensor names to shard files; "
                            "the index is malformed. Download it again or re-save the checkpoint.")
    shards: dict[str, None] = {}
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or not shard.strip():
            raise AnalysisError(f"{name} maps tensor {tensor!r} to {shard!r}, which is not a file name.")
        parts = shard.replace("\\", "/").split("/")
        if shard.startswith("/") or ".." in parts:
            raise AnalysisError(f"{name} maps tensor {tensor!r} to {shard!r}, outside the repository; "
                                "refusing to read it.")
        shards.setdefault(shard, None)
    return list(shards)


# ------------------------------------------------------------------------- quantised weights

#: Tensors stored beside packed GPTQ/AWQ `qweight`s.
_GPTQ_AUX = frozenset({"qzeros", "scales", "g_idx"})
#: Tensors stored beside a compressed-tensors `weight_packed`, or beside an FP8 `weight`.
_WEIGHT_AUX = frozenset({"weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx",
                         "weight_global_scale", "weight_scale_inv", "input_global_scale"})
#: Activation and KV-cache scales of quantised checkpoints; they sit on modules, not beside weights.
_ACTIVATION_SCALES = frozenset({"input_scale", "output_scale", "k_scale", "v_scale", "q_scale"})
#: bitsandbytes 4-bit quant state, saved as `<module>.weight.<state>`.
_BNB_STATE = ("absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state.")
#: bitsandbytes 8-bit row scales and layout, saved as `<module>.SCB` / `<module>.weight_format`.
_BNB8_AUX = frozenset({"SCB", "weight_format"})


@dataclass(frozen=True)
class _Scheme:
    """How a checkpoint is quantised: its label, the bits of packed values and their logical type."""

    label: str | None
    bits: int
    packed_dtype: str
    bnb_type: str


def _weight_groups(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The `config_groups.*.weights` blocks of a compressed-tensors config, in order."""
    groups = config.get("config_groups")
    if not isinstance(groups, Mapping):
        return []
    blocks = (group.get("weights") if isinstance(group, Mapping) else None for group in groups.values())
    return [block for block in blocks if isinstance(block, Mapping)]


def _config_bits(config: Mapping[str, Any]) -> int | None:
    """Bits of a packed value: GPTQ `bits`, AutoAWQ `w_bit`, or compressed-tensors `num_bits`."""
    candidates = [config.get("bits"), config.get("w_bit"), *(w.get("num_bits") for w in _weight_groups(config))]
    return next((c for c in candidates if isinstance(c, int) and not isinstance(c, bool)), None)


def _packed_kind(config: Mapping[str, Any]) -> str:
    """Whether packed values are floats (compressed-tensors NVFP4 says `type: float`) or integers."""
    return "fp" if any(w.get("type") == "float" for w in _weight_groups(config)) else "int"


def _is_bnb4_weight(tensor: TensorInfo, tensors: Mapping[str, TensorInfo]) -> bool:
    """A bitsandbytes 4-bit weight: bytes of two packed values each, with its quant state beside it."""
    if not tensor.name.endswith(".weight") or tensor.dtype != "U8":
        return False
    return f"{tensor.name}.absmax" in tensors or any(
        f"{tensor.name}.quant_state.bitsandbytes__{kind}" in tensors for kind in ("nf4", "fp4"))


def _detect_label(tensors: Mapping[str, TensorInfo]) -> str | None:
    """The quantisation scheme, from tensor names alone (for checkpoints without a quantization_config)."""
    names = tensors.keys()
    qweights = [t for t in tensors.values() if t.name.endswith(".qweight")]
    if qweights:
        first = qweights[0]
        base = first.name.removesuffix(".qweight")
        scales = tensors.get(f"{base}.scales")
        if f"{base}.g_idx" in tensors or (scales is not None and scales.shape[-1:] == first.shape[-1:]):
            return "gptq"  # GPTQ packs along the input dimension: qweight and scales share columns.
        return "awq"
    if any(name.endswith(".weight_packed") for name in names):
        return "compressed-tensors"
    if any(_is_bnb4_weight(t, tensors) for t in tensors.values()):
        return "bitsandbytes-4bit"
    if any(name.endswith(".SCB") for name in names):
        return "bitsandbytes-8bit"
    if any(name.endswith("_blocks") and name.removesuffix("_blocks") + "_scales" in tensors for name in names):
        return "mxfp4"
    if any(t.dtype in _FP8_DTYPES and t.name.endswith(".weight") for t in tensors.values()):
        return "fp8"
    return None


def _scheme(config: Mapping[str, Any] | None, tensors: Mapping[str, TensorInfo]) -> _Scheme:
    config = config or {}
    bits = _config_bits(config) or 4
    if not 1 <= bits <= 16:
        raise AnalysisError(f"quantization_config says bits={bits}; expected 1 to 16. Check config.json.")
    method = str(config.get("quant_method") or "").strip().lower()
    if method == "bitsandbytes":
        label = ("bitsandbytes-4bit" if config.get("load_in_4bit") else
                 "bitsandbytes-8bit" if config.get("load_in_8bit") else _detect_label(tensors))
    else:
        label = method or _detect_label(tensors)
    bnb_type = str(config.get("bnb_4bit_quant_type") or "fp4")
    return _Scheme(label, bits, f"{_packed_kind(config)}{bits}", bnb_type)


def _is_auxiliary(tensor: TensorInfo, tensors: Mapping[str, TensorInfo], quantized: bool) -> bool:
    """True for scales, zero points, group indices and quant state: stored, but not parameters."""
    base, _, leaf = tensor.name.rpartition(".")
    if leaf in _GPTQ_AUX and f"{base}.qweight" in tensors:
        return True
    if leaf in _WEIGHT_AUX and (f"{base}.weight" in tensors or f"{base}.weight_packed" in tensors):
        return True
    if leaf in _ACTIVATION_SCALES and quantized:
        return True
    if leaf in _BNB8_AUX and f"{base}.weight" in tensors and tensors[f"{base}.weight"].dtype == "I8":
        return True
    owner, marker, state = tensor.name.rpartition(".weight.")
    if marker and f"{owner}.weight" in tensors and state.startswith(_BNB_STATE):
        return True
    return tensor.name.endswith("_scales") and tensor.name.removesuffix("_scales") + "_blocks" in tensors


def _unpacked(tensor: TensorInfo, values_bits: int) -> int:
    stored_bits = tensor.nbytes * 8
    if stored_bits % values_bits:
        raise AnalysisError(
            f"Packed tensor {tensor.name!r} ({tensor.dtype} {list(tensor.shape)}) does not hold a whole number "
            f"of {values_bits}-bit values; the bits in config.json's quantization_config look wrong."
        )
    return stored_bits // values_bits


def _parameters(tensor: TensorInfo, tensors: Mapping[str, TensorInfo], scheme: _Scheme) -> tuple[str, int]:
    """The logical dtype and parameter count of a tensor that is not auxiliary."""
    name = tensor.name
    if name.endswith((".qweight", ".weight_packed")) and tensor.dtype in _INTEGER_DTYPES:
        return scheme.packed_dtype, _unpacked(tensor, scheme.bits)
    if _is_bnb4_weight(tensor, tensors):
        for kind in ("nf4", "fp4"):
            if f"{name}.quant_state.bitsandbytes__{kind}" in tensors:
                return kind, _unpacked(tensor, 4)
        return scheme.bnb_type, _unpacked(tensor, 4)
    if name.endswith("_blocks") and tensor.dtype == "U8" and name.removesuffix("_blocks") + "_scales" in tensors:
        return "mxfp4", _unpacked(tensor, 4)
    return tensor.dtype, tensor.numel


def _all_tensors(headers: Mapping[str, SafetensorsHeader]) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    where: dict[str, str] = {}
    for file, header in headers.items():
        for tensor in header.tensors:
            if tensor.name in tensors:
                raise AnalysisError(
                    f"Tensor {tensor.name!r} is in both {where[tensor.name]} and {file}; these files are not "
                    "shards of one checkpoint. Analyse them separately or add a model.safetensors.index.json."
                )
            tensors[tensor.name] = tensor
            where[tensor.name] = file
    return tensors


def summarize_safetensors(headers: Mapping[str, SafetensorsHeader],
                          quantization_config: Mapping[str, Any] | None = None) -> WeightsSummary:
    """Count the parameters of a checkpoint (all its shards), unpacking quantised weights.

    `quantization_config` is the block of that name from config.json; its `quant_method` names
    the scheme and its `bits` (or compressed-tensors `num_bits`) the packing. Without it the
    scheme is recognised from tensor names and packed values are taken to be 4-bit.
    """
    if not headers:
        raise AnalysisError("No safetensors headers to summarise.")
    tensors = _all_tensors(headers)
    scheme = _scheme(quantization_config, tensors)
    by_dtype: Counter[str] = Counter()
    non_parameter_bytes = 0
    for tensor in tensors.values():
        if _is_auxiliary(tensor, tensors, scheme.label is not None):
            non_parameter_bytes += tensor.nbytes
            continue
        dtype, count = _parameters(tensor, tensors, scheme)
        by_dtype[dtype] += count
    stored = sum(t.nbytes for t in tensors.values())
    parameters = sum(by_dtype.values())
    first = next(iter(headers.values()))
    return WeightsSummary(
        format="safetensors",
        files=tuple(headers),
        tensors=len(tensors),
        parameters=parameters,
        parameters_by_dtype=dict(sorted(by_dtype.items(), key=lambda item: (-item[1], item[0]))),
        stored_bytes=stored,
        non_parameter_bytes=non_parameter_bytes,
        quantization=scheme.label,
        bits_per_parameter=bits_per_parameter(stored, parameters),
        header_bytes=sum(h.header_bytes for h in headers.values()),
        metadata=dict(first.metadata),
    )
