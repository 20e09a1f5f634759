"""Header readers: safetensors and GGUF parsing, quantised parameter counts, byte sources, snapshots.

Files are generated here. Large or packed shapes are written as a real header followed by a
sparse data region (`truncate`), so a "4 GB" checkpoint costs no disk and no memory.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gguf
import httpx
import numpy as np
import pytest
from safetensors.numpy import save_file

from releasehub.analysis.readers import (
    AnalysisError,
    BytesSource,
    FetchStats,
    GGUFHeader,
    HttpRangeSource,
    LocalFileSource,
    gguf_config,
    parse_index,
    read_gguf_header,
    read_header,
    summarize_gguf,
    summarize_safetensors,
)
from releasehub.analysis.readers.safetensors import DTYPE_BITS, prefetch_bytes
from releasehub.analysis.snapshot import (
    LocalDirSnapshot,
    LocalFileSnapshot,
    load_gguf_variants,
    load_weights,
)

Q = gguf.GGMLQuantizationType

# ------------------------------------------------------------------------------- helpers


def st_header(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None
              ) -> tuple[dict[str, Any], int]:
    """A safetensors header dict with contiguous offsets, and the size of its data region."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        nbytes = math.prod(shape) * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return header, offset


def write_raw(path: Path, header: Any, data_bytes: int = 0, *, raw: bytes | None = None) -> Path:
    """A safetensors file with `header` (or raw header bytes) and a sparse data region."""
    encoded = raw if raw is not None else json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        handle.truncate(8 + len(encoded) + data_bytes)
    return path


def write_st(path: Path, tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None
             ) -> Path:
    header, data = st_header(tensors, metadata)
    return write_raw(path, header, data)


def summary_of(tmp_path: Path, tensors: dict[str, tuple[str, list[int]]],
               config: dict[str, Any] | None = None) -> Any:
    source = LocalFileSource(write_st(tmp_path / "model.safetensors", tensors))
    return summarize_safetensors({"model.safetensors": read_header(source)}, config)


# ------------------------------------------------------------------------------- sources


def test_bytes_source_reads_exactly_or_explains() -> None:
    stats = FetchStats()
    source = BytesSource(b"0123456789", "blob", stats=stats)
    assert source.size == 10
    assert source.read(2, 3) == b"234"
    assert source.read(10, 0) == b""
    assert (stats.requests, stats.bytes) == (2, 3)
    with pytest.raises(AnalysisError, match=r"blob is too short: bytes 8\.\.11 .* only 10 bytes"):
        source.read(8, 4)


def test_local_file_source(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(100)))
    source = LocalFileSource(path)
    assert source.size == 100 and source.name == str(path)
    assert source.read(98, 2) == bytes([98, 99])
    with pytest.raises(AnalysisError, match="too short"):
        source.read(99, 2)
    with pytest.raises(AnalysisError, match="does not exist"):
        LocalFileSource(tmp_path / "missing.bin")
    with pytest.raises(AnalysisError, match="not a regular file"):
        LocalFileSource(tmp_path)


class RangeServer:
    """An httpx transport that serves one file with Range support (or deliberately without)."""

    def __init__(self, data: bytes, *, ranges: bool = True) -> None:
        self.data = data
        self.ranges = ranges
        self.requests: list[httpx.Request] = []
        self.full_body_read = False

    def body(self) -> Any:
        server = self

        class Tracking(httpx.SyncByteStream):
            def __iter__(self) -> Any:
                server.full_body_read = True
                yield server.data

        return Tracking()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/org/m/resolve/main/w.bin":
            return httpx.Response(302, headers={"Location": "https://cdn.example/blob"})
        if request.url.path == "/org/g/resolve/main/gated.bin":
            return httpx.Response(403, headers={"X-Error-Code": "GatedRepo"},
                                  json={"error": "Access to model org/m is restricted. Request access."})
        if request.url.path == "/private":
            return httpx.Response(401, json={"error": "Repository org/p not found. Pass a token."})
        if request.url.path == "/missing":
            return httpx.Response(404, headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": "no such file"})
        if not self.ranges:
            return httpx.Response(200, stream=self.body())
        first, last = (int(x) for x in request.headers["Range"].removeprefix("bytes=").split("-"))
        chunk = self.data[first : last + 1]
        return httpx.Response(206, content=chunk, headers={
            "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/{len(self.data)}"})


def test_http_range_source_follows_redirects_and_counts(tmp_path: Path) -> None:
    server = RangeServer(bytes(range(256)) * 4)
    stats = FetchStats()
    with httpx.Client(transport=httpx.MockTransport(server), base_url="https://hub.example") as client:
        source = HttpRangeSource(client, "https://hub.example/org/m/resolve/main/w.bin", stats=stats,
                                 headers={"Authorization": "Bearer secret"})
        assert source.read(10, 4) == bytes([10, 11, 12, 13])
        assert source.size == 1024  # learnt from Content-Range, no extra request
        assert source.read(1020, 4) == bytes([252, 253, 254, 255])
        with pytest.raises(AnalysisError, match="too short"):
            source.read(1022, 4)
    assert (stats.requests, stats.bytes) == (2, 8)
    cdn = [r for r in server.requests if r.url.host == "cdn.example"]
    assert len(cdn) == 2 and cdn[0].headers["Range"] == "bytes=10-13"
    assert "Authorization" not in cdn[0].headers  # the token never leaves the Hub's origin
    assert server.requests[0].headers["Authorization"] == "Bearer secret"


def test_http_range_source_refuses_a_whole_body() -> None:
    server = RangeServer(b"x" * 1000, ranges=False)
    with httpx.Client(transport=httpx.MockTransport(server)) as client:
        source = HttpRangeSource(client, "https://hub.example/plain", size=1000)
        with pytest.raises(AnalysisError, match="does not support HTTP range requests"):
            source.read(0, 8)
    assert not server.full_body_read


@pytest.mark.parametrize(("path", "message"), [
    ("/org/g/resolve/main/gated.bin",
     r"gated \(403\)\. Request access on https://hub.example/org/g, .*restricted\. Request access"),
    ("/private", r"sign in \(401\).*--token or set HF_TOKEN.*Repository org/p not found"),
    ("/missing", r"the file does not exist at this revision \(404\).*no such file"),
])
def test_http_range_source_errors_quote_the_server(path: str, message: str) -> None:
    with httpx.Client(transport=httpx.MockTransport(RangeServer(b""))) as client, \
            pytest.raises(AnalysisError, match=message):
        HttpRangeSource(client, f"https://hub.example{path}", size=100).read(0, 8)


# ------------------------------------------------------------------------------ safetensors


def test_real_file_exact_counts_per_dtype(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({
        "embed.weight": np.zeros((10, 4), np.float32),
        "layer.weight": np.zeros((4, 4), np.float16),
        "layer.bias": np.zeros((4,), np.float16),
        "position_ids": np.zeros((1, 7), np.int64),
        "mask": np.zeros((3,), np.bool_),
        "scalar": np.zeros((), np.float32),
    }, str(path), metadata={"format": "np"})
    header = read_header(LocalFileSource(path))
    by_name = {t.name: t for t in header.tensors}
    assert by_name["embed.weight"].dtype == "F32" and by_name["embed.weight"].nbytes == 160
    assert by_name["layer.weight"].shape == (4, 4) and by_name["layer.weight"].nbytes == 32
    assert by_name["scalar"].shape == () and by_name["scalar"].nbytes == 4
    assert header.metadata == {"format": "np"}
    assert header.header_bytes + header.data_bytes == path.stat().st_size
    summary = summarize_safetensors({"model.safetensors": header})
    assert summary.parameters_by_dtype == {"F32": 41, "F16": 20, "I64": 7, "BOOL": 3}
    assert summary.parameters == 71 and summary.tensors == 6
    assert summary.stored_bytes == 164 + 40 + 56 + 3 and summary.non_parameter_bytes == 0
    assert summary.quantization is None and summary.format == "safetensors"
    assert summary.bits_per_parameter == round(263 * 8 / 71, 3)
    assert summary.header_bytes == header.header_bytes and summary.metadata == {"format": "np"}


def test_sparse_large_checkpoint_and_new_dtypes(tmp_path: Path) -> None:
    summary = summary_of(tmp_path, {
        "embed.weight": ("BF16", [128_256, 8192]),
        "layers.0.mlp.weight": ("F8_E5M2", [8192, 28_672]),
        "mx.scale": ("F8_E8M0", [1024]),
        "fp4.weight": ("F4", [16, 16]),
        "fp6.weight": ("F6_E2M3", [4, 4]),
    })
    assert summary.parameters_by_dtype == {"BF16": 128_256 * 8192, "F8_E5M2": 8192 * 28_672, "F8_E8M0": 1024,
                                           "F4": 256, "F6_E2M3": 16}
    assert summary.stored_bytes == 128_256 * 8192 * 2 + 8192 * 28_672 + 1024 + 128 + 12


def test_a_header_takes_one_read_when_it_fits_the_prefetch_and_two_otherwise(tmp_path: Path) -> None:
    path = write_st(tmp_path / "big.safetensors", {"w": ("BF16", [65_536, 65_536])})  # 8 GiB, sparse
    stats = FetchStats()
    header = read_header(LocalFileSource(path, stats=stats))
    size = path.stat().st_size
    assert stats.requests == 1 and stats.bytes == prefetch_bytes(size) == size // 200_000
    assert header.header_bytes < stats.bytes < size / 100_000
    # A header longer than the prefetch: one more read, for exactly the rest of it.
    many = write_st(tmp_path / "many.safetensors", {f"layer.{i}.weight": ("F32", [4]) for i in range(400)})
    stats = FetchStats()
    long_header = read_header(LocalFileSource(many, stats=stats))
    assert long_header.header_bytes > prefetch_bytes(many.stat().st_size) == 4096
    assert stats.requests == 2 and stats.bytes == long_header.header_bytes
    assert header.data_bytes == 65_536 * 65_536 * 2


def _bad(tmp_path: Path, header: Any = None, data: int = 0, raw: bytes | None = None) -> Path:
    return write_raw(tmp_path / "bad.safetensors", header, data, raw=raw)


def _bytes(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: _bytes(p, b"\xff" * 8 + b"{}"), "more than the 100 MiB limit"),
    (lambda p: _bytes(p, struct.pack("<Q", 1000) + b"{}"), "says 1000 bytes but the file has only 10 bytes"),
    (lambda p: _bytes(p, b"\x02\x00"), "too short"),
    (lambda p: _bytes(p, b"version https://git-lfs.github.com/spec/v1\n"), "Git LFS pointer"),
    (lambda p: _bad(p, raw=b'{"a": '), "not valid JSON"),
    (lambda p: _bad(p, raw=b"[1, 2]"), "a JSON list, not an object"),
    (lambda p: _bad(p, {"w": {"dtype": "F12", "shape": [2], "data_offsets": [0, 3]}}, 3), "unknown dtype 'F12'"),
    (lambda p: _bad(p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 4),
     "ends at data byte 8, past the end of the file"),
    (lambda p: _bad(p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 6]}}, 8), "needs 8"),
    (lambda p: _bad(p, {"w": {"dtype": "F32", "shape": [2]}}, 8), "has no data_offsets"),
    (lambda p: _bad(p, {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8), "non-negative"),
    (lambda p: _bad(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12), "overlap"),
    (lambda p: _bad(p, {"__metadata__": {"n": 1}}), "__metadata__ must be an object of string values"),
])
def test_malformed_headers_say_what_is_wrong(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AnalysisError, match=message) as error:
        read_header(LocalFileSource(path))
    assert str(path) in str(error.value)


def test_parse_index() -> None:
    text = json.dumps({"metadata": {"total_size": 1}, "weight_map": {
        "a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}})
    assert parse_index(text) == ["model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"]
    with pytest.raises(AnalysisError, match="not valid JSON"):
        parse_index("{")
    with pytest.raises(AnalysisError, match="no weight_map"):
        parse_index(json.dumps({"metadata": {}}))
    with pytest.raises(AnalysisError, match="outside the repository"):
        parse_index(json.dumps({"weight_map": {"a": "../../etc/passwd"}}))
    with pytest.raises(AnalysisError, match="not a file name"):
        parse_index(json.dumps({"weight_map": {"a": 3}}))


def test_sharded_checkpoint_in_a_directory(tmp_path: Path) -> None:
    write_st(tmp_path / "model-00001-of-00002.safetensors",
             {"embed.weight": ("BF16", [1000, 64]), "layers.0.weight": ("BF16", [64, 64])}, {"format": "pt"})
    write_st(tmp_path / "model-00002-of-00002.safetensors",
             {"layers.1.weight": ("BF16", [64, 64]), "norm.weight": ("F32", [64])})
    # A stray file the index does not name is not part of the checkpoint.
    write_st(tmp_path / "extra.safetensors", {"other": ("F32", [10])})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "embed.weight": "model-00001-of-00002.safetensors", "layers.0.weight": "model-00001-of-00002.safetensors",
        "layers.1.weight": "model-00002-of-00002.safetensors", "norm.weight": "model-00002-of-00002.safetensors"}}))
    calls: list[tuple[int, int]] = []
    snapshot = LocalDirSnapshot(tmp_path)
    summary = load_weights(snapshot, progress=lambda done, total: calls.append((done, total)))
    assert summary is not None
    assert summary.files == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert summary.parameters_by_dtype == {"BF16": 64_000 + 2 * 4096, "F32": 64}
    assert summary.metadata == {"format": "pt"}
    assert calls == [(1, 2), (2, 2)]
    assert snapshot.stats.requests == 2  # one read per shard: each header fits the first read


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(AnalysisError, match="lists gone.safetensors, which the repo does not have"):
        load_weights(LocalDirSnapshot(tmp_path))


def test_tensor_in_two_files_is_refused(tmp_path: Path) -> None:
    write_st(tmp_path / "a.safetensors", {"w": ("F32", [4])})
    write_st(tmp_path / "b.safetensors", {"w": ("F32", [4])})
    with pytest.raises(AnalysisError, match="'w' is in both a.safetensors and b.safetensors"):
        load_weights(LocalDirSnapshot(tmp_path))


def test_consolidated_copy_is_not_counted_twice(tmp_path: Path) -> None:
    write_st(tmp_path / "model.safetensors", {"layers.0.weight": ("BF16", [64, 64])})
    write_st(tmp_path / "consolidated.safetensors", {"layers.0.attention.wq.weight": ("BF16", [64, 64])})
    summary = load_weights(LocalDirSnapshot(tmp_path))
    assert summary is not None and summary.files == ("model.safetensors",) and summary.parameters == 4096


# -------------------------------------------------------------------- quantised safetensors

IN, OUT, GROUP = 4096, 1024, 128


def test_gptq_unpacks_qweight_and_skips_scales(tmp_path: Path) -> None:
    tensors = {
        "model.embed_tokens.weight": ("F16", [32_000, OUT]),
        "model.layers.0.mlp.down_proj.qweight": ("I32", [IN * 4 // 32, OUT]),
        "model.layers.0.mlp.down_proj.qzeros": ("I32", [IN // GROUP, OUT * 4 // 32]),
        "model.layers.0.mlp.down_proj.scales": ("F16", [IN // GROUP, OUT]),
        "model.layers.0.mlp.down_proj.g_idx": ("I32", [IN]),
        "model.layers.0.mlp.down_proj.bias": ("F16", [OUT]),
    }
    summary = summary_of(tmp_path, tensors, {"quant_method": "gptq", "bits": 4, "group_size": GROUP})
    assert summary.parameters_by_dtype == {"F16": 32_000 * OUT + OUT, "int4": IN * OUT}
    aux = (IN // GROUP) * (OUT // 8) * 4 + (IN // GROUP) * OUT * 2 + IN * 4
    assert summary.non_parameter_bytes == aux
    assert summary.stored_bytes == 32_000 * OUT * 2 + OUT * 2 + IN * OUT // 2 + aux
    assert summary.quantization == "gptq"
    assert summary.bits_per_parameter == round(summary.stored_bytes * 8 / summary.parameters, 3)
    # Without a config the scheme is recognised by its tensors, and 4 bits is assumed.
    assert summary_of(tmp_path, tensors).parameters_by_dtype == summary.parameters_by_dtype
    assert summary_of(tmp_path, tensors).quantization == "gptq"


def test_gptq_8bit_from_config(tmp_path: Path) -> None:
    tensors = {"l.qweight": ("I32", [IN * 8 // 32, OUT]), "l.qzeros": ("I32", [IN // GROUP, OUT * 8 // 32]),
               "l.scales": ("F16", [IN // GROUP, OUT])}
    summary = summary_of(tmp_path, tensors, {"quant_method": "gptq", "bits": 8})
    assert summary.parameters_by_dtype == {"int8": IN * OUT}
    assert summary.bits_per_parameter == round((IN * OUT + (IN // GROUP) * OUT * 2 + (IN // GROUP) * OUT)
                                               * 8 / (IN * OUT), 3)


def test_awq_unpacks_along_the_output_dimension(tmp_path: Path) -> None:
    tensors = {
        "model.layers.0.self_attn.q_proj.qweight": ("I32", [IN, OUT * 4 // 32]),
        "model.layers.0.self_attn.q_proj.qzeros": ("I32", [IN // GROUP, OUT * 4 // 32]),
        "model.layers.0.self_attn.q_proj.scales": ("F16", [IN // GROUP, OUT]),
        "model.norm.weight": ("F16", [IN]),
    }
    detected = summary_of(tmp_path, tensors)
    assert detected.quantization == "awq"
    assert detected.parameters_by_dtype == {"int4": IN * OUT, "F16": IN}
    assert detected.non_parameter_bytes == (IN // GROUP) * (OUT // 8) * 4 + (IN // GROUP) * OUT * 2
    configured = summary_of(tmp_path, tensors, {"quant_method": "awq", "bits": 4, "version": "gemm"})
    assert configured.quantization == "awq" and configured.parameters == IN * OUT + IN


def test_compressed_tensors_pack_quantized(tmp_path: Path) -> None:
    tensors = {
        "model.layers.0.mlp.up_proj.weight_packed": ("I32", [OUT, IN * 4 // 32]),
        "model.layers.0.mlp.up_proj.weight_scale": ("BF16", [OUT, IN // GROUP]),
        "model.layers.0.mlp.up_proj.weight_zero_point": ("I32", [OUT // 8, IN // GROUP]),
        "model.layers.0.mlp.up_proj.weight_shape": ("I64", [2]),
        "lm_head.weight": ("BF16", [32_000, IN]),
    }
    config = {"quant_method": "compressed-tensors", "format": "pack-quantized",
              "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int"}}}}
    summary = summary_of(tmp_path, tensors, config)
    assert summary.quantization == "compressed-tensors"
    assert summary.parameters_by_dtype == {"BF16": 32_000 * IN, "int4": OUT * IN}
    assert summary.non_parameter_bytes == OUT * (IN // GROUP) * 2 + (OUT // 8) * (IN // GROUP) * 4 + 16
    assert summary_of(tmp_path, tensors).quantization == "compressed-tensors"


def test_fp8_block_scaled_deepseek_style(tmp_path: Path) -> None:
    tensors = {
        "model.layers.0.mlp.gate_proj.weight": ("F8_E4M3", [OUT, IN]),
        "model.layers.0.mlp.gate_proj.weight_scale_inv": ("F32", [OUT // 128, IN // 128]),
        "model.layers.0.input_layernorm.weight": ("BF16", [IN]),
    }
    summary = summary_of(tmp_path, tensors, {"quant_method": "fp8", "fmt": "e4m3",
                                             "weight_block_size": [128, 128]})
    assert summary.quantization == "fp8"
    assert summary.parameters_by_dtype == {"F8_E4M3": OUT * IN, "BF16": IN}
    assert summary.non_parameter_bytes == (OUT // 128) * (IN // 128) * 4
    assert summary_of(tmp_path, tensors).quantization == "fp8"


def test_fp8_compressed_tensors_scales_are_not_parameters(tmp_path: Path) -> None:
    tensors = {
        "model.layers.0.self_attn.o_proj.weight": ("F8_E4M3", [OUT, IN]),
        "model.layers.0.self_attn.o_proj.weight_scale": ("F32", [OUT, 1]),
        "model.layers.0.self_attn.o_proj.input_scale": ("F32", [1]),
        "model.layers.0.self_attn.k_scale": ("F32", []),
    }
    config = {"quant_method": "compressed-tensors", "format": "float-quantized",
              "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}}}
    summary = summary_of(tmp_path, tensors, config)
    assert summary.parameters_by_dtype == {"F8_E4M3": OUT * IN}
    assert summary.non_parameter_bytes == OUT * 4 + 4 + 4
    assert summary.quantization == "compressed-tensors"


def test_bitsandbytes_4bit(tmp_path: Path) -> None:
    packed = OUT * IN // 2
    blocks = OUT * IN // 64
    base = "model.layers.0.mlp.down_proj.weight"
    tensors = {
        base: ("U8", [packed, 1]),
        f"{base}.absmax": ("U8", [blocks]),
        f"{base}.quant_map": ("F32", [256]),
        f"{base}.nested_absmax": ("F32", [blocks // 256]),
        f"{base}.nested_quant_map": ("F32", [256]),
        f"{base}.quant_state.bitsandbytes__nf4": ("U8", [117]),
        "model.norm.weight": ("F16", [IN]),
    }
    summary = summary_of(tmp_path, tensors)
    assert summary.quantization == "bitsandbytes-4bit"
    assert summary.parameters_by_dtype == {"nf4": OUT * IN, "F16": IN}
    assert summary.non_parameter_bytes == blocks + 1024 + (blocks // 256) * 4 + 1024 + 117
    configured = summary_of(tmp_path, tensors, {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                                "bnb_4bit_quant_type": "nf4"})
    assert configured.quantization == "bitsandbytes-4bit" and configured.parameters == summary.parameters


def test_bitsandbytes_8bit_and_mxfp4(tmp_path: Path) -> None:
    bnb8 = summary_of(tmp_path, {"l.weight": ("I8", [OUT, IN]), "l.SCB": ("F32", [OUT]),
                                 "l.weight_format": ("U8", [1])})
    assert bnb8.quantization == "bitsandbytes-8bit"
    assert bnb8.parameters_by_dtype == {"I8": OUT * IN} and bnb8.non_parameter_bytes == OUT * 4 + 1
    # gpt-oss style: two fp4 values per byte in `*_blocks`, one shared exponent per 32 in `*_scales`.
    mxfp4 = summary_of(tmp_path, {"experts.down_proj_blocks": ("U8", [4, OUT, IN // 32, 16]),
                                  "experts.down_proj_scales": ("U8", [4, OUT, IN // 32]),
                                  "experts.down_proj_bias": ("BF16", [4, OUT])})
    assert mxfp4.quantization == "mxfp4"
    assert mxfp4.parameters_by_dtype == {"mxfp4": 4 * OUT * IN, "BF16": 4 * OUT}
    assert mxfp4.non_parameter_bytes == 4 * OUT * IN // 32


def test_fetch_stats_is_plain_data() -> None:
    from dataclasses import asdict

    stats = FetchStats()
    stats.add(10)
    assert asdict(stats) == {"requests": 1, "bytes": 10} and stats == FetchStats(1, 10)


def test_packed_tensor_that_does_not_match_the_bits(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="bits in config.json's quantization_config look wrong"):
        summary_of(tmp_path, {"l.qweight": ("I32", [1, 1]), "l.scales": ("F16", [1, 1])}, {"bits": 3})


# ------------------------------------------------------------------------------------ GGUF

def write_gguf(path: Path, *, file_type: gguf.LlamaFileType | None = gguf.LlamaFileType.MOSTLY_Q4_K_M,
               vocab: int = 1000, merges: bool = False, split_max_tensors: int = 0,
               sparse: Mapping[str, tuple[tuple[int, ...], Q]] | None = None) -> Path:
    """A small llama-style GGUF with a tokenizer and tensors of several quant types.

    `sparse` tensors are declared but not written: their data region is a sparse hole.
    """
    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    writer.add_name("Tiny")
    writer.add_block_count(2)
    writer.add_context_length(8192)
    writer.add_embedding_length(256)
    writer.add_feed_forward_length(1024)
    writer.add_head_count(8)
    writer.add_head_count_kv(2)
    writer.add_key_length(32)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(500000.0)
    writer.add_sliding_window(4096)
    writer.add_expert_count(8)
    writer.add_expert_used_count(2)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"<token number {i:06d}>" for i in range(vocab)])
    if merges:
        writer.add_token_types([1] * vocab)
        writer.add_token_merges([f"a{i} b{i}" for i in range(vocab)])
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_array("test.small_ints", [1, 2, 3])
    writer.add_array("test.small_strings", ["x", "yz"])
    writer.add_bool("test.flag", True)
    writer.add_uint64("test.big", 2**40)
    writer.add_int16("test.negative", -7)
    writer.add_float64("test.double", 0.1)
    writer.add_tensor("token_embd.weight", np.zeros((64, 256), np.float16))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((256, 144), np.uint8), raw_dtype=Q.Q4_K)
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((256, 210 * 4), np.uint8), raw_dtype=Q.Q6_K)
    writer.add_tensor("blk.1.attn_k.weight", np.zeros((64, 34 * 8), np.uint8), raw_dtype=Q.Q8_0)
    writer.add_tensor("output_norm.weight", np.zeros((256,), np.float32))
    for name, (shape, qtype) in (sparse or {}).items():
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        writer.add_tensor_info(name, shape, np.dtype(np.float32), math.prod(shape) // block * size, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    if sparse:
        writer.write_ti_data_to_file()
        writer.close()
        infos = [info for shard in writer.tensors for info in shard.values()]
        with open(path, "r+b") as handle:
            data_offset = -(-handle.seek(0, 2) // 32) * 32
            handle.truncate(data_offset + sum(-(-info.nbytes // 32) * 32 for info in infos))
        return path
    writer.write_tensors_to_file()
    writer.close()
    return path


def reference_metadata(reader: gguf.GGUFReader) -> dict[str, Any]:
    """What read_gguf_header should report, from the gguf package's own reader."""
    out: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > 64:
            out[name] = {"type": field.types[-1].name, "length": len(field.data)}
        else:
            value = field.contents()
            out[name] = value.item() if hasattr(value, "item") else value
    return out


def test_gguf_header_matches_the_reference_reader(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny-Q4_K_M.gguf", vocab=100_000)
    header = read_gguf_header(LocalFileSource(path))
    reader = gguf.GGUFReader(path)
    assert header.version == 3
    assert header.metadata == reference_metadata(reader)
    assert header.metadata["tokenizer.ggml.tokens"] == {"type": "STRING", "length": 100_000}
    assert header.metadata["test.small_strings"] == ["x", "yz"]
    assert header.metadata["test.big"] == 2**40 and header.metadata["test.flag"] is True
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in header.tensors] == [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes)) for t in reader.tensors]
    assert header.data_offset == reader.data_offset


def test_gguf_streams_megabytes_of_tokenizer_in_a_few_chunks(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", vocab=100_000, merges=True)
    stats = FetchStats()
    header = read_gguf_header(LocalFileSource(path, stats=stats))
    assert header.metadata["tokenizer.ggml.merges"] == {"type": "STRING", "length": 100_000}
    assert header.metadata["tokenizer.ggml.token_type"] == {"type": "INT32", "length": 100_000}
    assert header.header_bytes > 3 << 20
    assert stats.requests == 3  # 1 MiB, 2 MiB, then the rest


def test_gguf_reads_a_few_chunks_of_a_huge_file(tmp_path: Path) -> None:
    sparse = {"blk.1.ffn_up.weight": ((131_072, 65_536), Q.Q4_K)}  # 4.5 GiB of data, never written
    path = write_gguf(tmp_path / "huge.gguf", sparse=sparse)
    stats = FetchStats()
    header = read_gguf_header(LocalFileSource(path, stats=stats))
    assert path.stat().st_size > 4 << 30
    assert stats.requests == 1 and stats.bytes == 1 << 20
    huge = header.tensors[-1]
    assert huge.shape == (65_536, 131_072) and huge.nbytes == 131_072 * 65_536 // 256 * 144


def test_gguf_summary_and_config(tmp_path: Path) -> None:
    header = read_gguf_header(LocalFileSource(write_gguf(tmp_path / "m.gguf")))
    summary = summarize_gguf({"m.gguf": header})
    assert summary.format == "gguf" and summary.quantization == "Q4_K_M"
    assert summary.parameters_by_dtype == {"Q6_K": 256 * 1024, "Q4_K": 256 * 256, "F16": 64 * 256,
                                           "F32": 256, "Q8_0": 64 * 256}
    assert summary.parameters == sum(summary.parameters_by_dtype.values())
    assert summary.stored_bytes == 256 * 210 * 4 + 256 * 144 + 64 * 256 * 2 + 1024 + 64 * 34 * 8
    assert summary.non_parameter_bytes == 0 and summary.header_bytes == header.header_bytes
    assert summary.metadata["general.name"] == "Tiny"
    assert gguf_config(header) == {
        "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 1024,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 8192,
        "num_local_experts": 8, "num_experts_per_tok": 2, "sliding_window": 4096,
        "rms_norm_eps": pytest.approx(1e-5), "rope_theta": 500000.0, "vocab_size": 1000,
        "tie_word_embeddings": True,
    }
    # Without general.file_type the most common tensor type names the quantisation.
    untyped = read_gguf_header(LocalFileSource(write_gguf(tmp_path / "u.gguf", file_type=None)))
    assert summarize_gguf({"u.gguf": untyped}).quantization == "Q6_K"


def test_gguf_config_vocab_from_the_embedding() -> None:
    header = GGUFHeader(3, {"general.architecture": "qwen2", "qwen2.block_count": 4}, (
        read_st_info("token_embd.weight", "F16", (896, 151_936)),), 0, 0)
    assert gguf_config(header) == {"model_type": "qwen2", "num_hidden_layers": 4, "vocab_size": 151_936,
                                   "tie_word_embeddings": True}
    with pytest.raises(AnalysisError, match="no general.architecture"):
        gguf_config(GGUFHeader(3, {}, (), 0, 0))


def read_st_info(name: str, dtype: str, shape: tuple[int, ...]) -> Any:
    from releasehub.analysis.readers import TensorInfo

    return TensorInfo(name, dtype, shape, math.prod(shape) * 2)


def test_split_gguf(tmp_path: Path) -> None:
    write_gguf(tmp_path / "model.gguf", split_max_tensors=2)
    parts = sorted(p.name for p in tmp_path.glob("*.gguf"))
    assert parts == ["model-00001-of-00003.gguf", "model-00002-of-00003.gguf", "model-00003-of-00003.gguf"]
    headers = {name: read_gguf_header(LocalFileSource(tmp_path / name)) for name in reversed(parts)}
    summary = summarize_gguf(headers)
    assert summary.files == tuple(parts) and summary.tensors == 5
    assert summary.parameters == 256 * 1024 + 256 * 256 + 64 * 256 + 256 + 64 * 256
    assert summary.quantization == "Q4_K_M" and summary.metadata["split.count"] == 3
    del headers[parts[1]]
    with pytest.raises(AnalysisError, match=r"has 3 parts but 2 were given"):
        summarize_gguf(headers)


def test_gguf_variants_in_a_directory(tmp_path: Path) -> None:
    (tmp_path / "split").mkdir()
    write_gguf(tmp_path / "split" / "tiny-Q8_0.gguf", split_max_tensors=3, file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    write_gguf(tmp_path / "tiny-Q4_K_M.gguf")
    write_gguf(tmp_path / "mmproj-F16.gguf", file_type=gguf.LlamaFileType.MOSTLY_F16)
    snapshot = LocalDirSnapshot(tmp_path)
    variants = load_gguf_variants(snapshot)
    assert list(variants) == ["split/tiny-Q8_0", "tiny-Q4_K_M", "mmproj-F16"]
    assert variants["split/tiny-Q8_0"].files == ("split/tiny-Q8_0-00001-of-00002.gguf",
                                                "split/tiny-Q8_0-00002-of-00002.gguf")
    assert variants["split/tiny-Q8_0"].quantization == "Q8_0"
    assert variants["mmproj-F16"].quantization == "F16"
    first = load_weights(LocalDirSnapshot(tmp_path))
    assert first == variants["split/tiny-Q8_0"]


@pytest.mark.parametrize(("data", "message"), [
    (b"GGML" + b"\x00" * 20, "not the GGUF magic"),
    (b"GGUF" + struct.pack("<I", 1) + b"\x00" * 16, "version 1"),
    (b"GGUF" + struct.pack(">I", 3) + b"\x00" * 16, "big-endian"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 10**9) + b"ab" + bytes(12),
     "claims 1000000000 bytes, more than the file holds"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 10) + b"\x01\x02",
     "the header runs past the end of the file"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99),
     "unknown value type 99"),
    (b"GGUF" + struct.pack("<IQQ", 3, 10**12, 0), "more than the file can hold"),
    (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS pointer"),
])
def test_malformed_gguf(data: bytes, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        read_gguf_header(BytesSource(data, "broken.gguf"))


def test_gguf_tensor_past_the_end_of_the_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    with pytest.raises(AnalysisError, match="runs past the end of the file"):
        read_gguf_header(BytesSource(data[:-2048], "cut.gguf"))


# -------------------------------------------------------------------------------- snapshots


def test_local_dir_snapshot(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "sub" / "deeper" / "notes.txt").write_text("x" * 100)
    (tmp_path / "link.json").symlink_to(tmp_path / "config.json")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    snapshot = LocalDirSnapshot(tmp_path)
    assert snapshot.files() == {"config.json": 23, "link.json": 23, "sub/deeper/notes.txt": 100}
    assert snapshot.read_text("config.json") == '{"model_type": "llama"}'
    assert snapshot.read_text("README.md") is None
    with pytest.raises(AnalysisError, match="more than the 10 bytes"):
        snapshot.read_text("sub/deeper/notes.txt", max_bytes=10)
    with pytest.raises(AnalysisError, match="not a valid file path"):
        snapshot.read_text("../secret")
    assert snapshot.source("sub/deeper/notes.txt").read(0, 2) == b"xx"
    with pytest.raises(AnalysisError, match="no file missing.bin"):
        snapshot.source("missing.bin")
    assert load_weights(snapshot) is None
    with pytest.raises(AnalysisError, match="is not a directory"):
        LocalDirSnapshot(tmp_path / "config.json")


def test_local_file_snapshots(tmp_path: Path) -> None:
    path = write_st(tmp_path / "weights.safetensors", {"w": ("BF16", [10, 10])})
    snapshot = LocalFileSnapshot(path)
    assert snapshot.files() == {"weights.safetensors": path.stat().st_size}
    summary = load_weights(snapshot)
    assert summary is not None and summary.parameters == 100 and snapshot.stats.requests == 1

    config = tmp_path / "my-config.json"
    config.write_text('{"model_type": "llama", "quantization_config": {"bits": 4}}')
    as_config = LocalFileSnapshot(config)
    assert as_config.files() == {"config.json": config.stat().st_size}
    assert as_config.read_text("config.json") == config.read_text()
    assert load_weights(as_config) is None

    gguf_snapshot = LocalFileSnapshot(write_gguf(tmp_path / "m.gguf"))
    gguf_summary = load_weights(gguf_snapshot)
    assert gguf_summary is not None and gguf_summary.quantization == "Q4_K_M"

    (tmp_path / "model.bin").write_bytes(b"pickle")
    with pytest.raises(AnalysisError, match="not a .safetensors, .gguf or config.json file"):
        LocalFileSnapshot(tmp_path / "model.bin")


def test_quantization_config_is_read_from_config_json(tmp_path: Path) -> None:
    write_st(tmp_path / "model.safetensors", {"l.qweight": ("I32", [IN * 2 // 32, OUT]),
                                              "l.scales": ("F16", [IN // GROUP, OUT])})
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 2}}))
    summary = load_weights(LocalDirSnapshot(tmp_path))
    assert summary is not None and summary.parameters_by_dtype == {"int2": IN * OUT}
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AnalysisError, match="config.json of .* is not valid JSON"):
        load_weights(LocalDirSnapshot(tmp_path))


class FakeHub:
    """Just enough of the Hub API for HubSnapshot: revision, a paginated tree, resolve with ranges."""

    SHA = "a" * 40

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        raw_path = request.url.raw_path.decode().split("?")[0]
        if raw_path in ("/api/models/org/m/revision/release%2Fv1", "/api/models/org/m"):
            return httpx.Response(200, json={"id": "org/m", "sha": self.SHA})
        if path == "/api/models/org/m/revision/nope":
            return httpx.Response(404, headers={"X-Error-Code": "RevisionNotFound"},
                                  json={"error": "Invalid rev id: nope"})
        if path == f"/api/models/org/m/tree/{self.SHA}":
            assert request.url.params["recursive"] == "true"
            entries = [{"type": "file", "path": p, "size": len(d), "oid": "x"} for p, d in self.files.items()]
            entries.append({"type": "directory", "path": "sub", "size": 0, "oid": "y"})
            cursor = int(request.url.params.get("cursor", 0))
            page = entries[cursor : cursor + 2]
            headers = {}
            if cursor + 2 < len(entries):
                headers["Link"] = f'</api/models/org/m/tree/{self.SHA}?recursive=true&cursor={cursor + 2}>; rel="next"'
            return httpx.Response(200, json=page, headers=headers)
        prefix = f"/org/m/resolve/{self.SHA}/"
        if path.startswith(prefix):
            data = self.files[path.removeprefix(prefix)]
            if "Range" not in request.headers:
                return httpx.Response(200, content=data)
            first, last = (int(x) for x in request.headers["Range"].removeprefix("bytes=").split("-"))
            return httpx.Response(206, content=data[first : last + 1],
                                  headers={"Content-Range": f"bytes {first}-{min(last, len(data) - 1)}/{len(data)}"})
        return httpx.Response(404, headers={"X-Error-Code": "RepoNotFound"})


def test_hub_snapshot_against_a_fake_hub(tmp_path: Path) -> None:
    from releasehub.analysis.snapshot import HubSnapshot

    weights = write_st(tmp_path / "model.safetensors", {"w": ("BF16", [8, 8])}).read_bytes()
    hub = FakeHub({"config.json": b'{"model_type": "llama"}', "model.safetensors": weights,
                   "sub/notes.md": b"hello", "README.md": b"# card"})
    client = httpx.Client(transport=httpx.MockTransport(hub))
    snapshot = HubSnapshot("https://hub.example/", "org/m", revision="release/v1", token="tok", client=client)
    assert snapshot.revision == FakeHub.SHA and snapshot.name == "org/m"
    assert snapshot.files() == {"README.md": 6, "config.json": 23, "model.safetensors": len(weights),
                                "sub/notes.md": 5}
    assert sum("/tree/" in r.url.path for r in hub.requests) == 3  # followed the Link header twice
    assert snapshot.read_text("sub/notes.md") == "hello" and snapshot.read_text("absent.txt") is None
    summary = load_weights(snapshot)
    assert summary is not None and summary.parameters == 64
    assert (snapshot.stats.requests, snapshot.stats.bytes) == (1, len(weights))  # small file: all in one read
    assert all(r.headers["Authorization"] == "Bearer tok" for r in hub.requests)
    with pytest.raises(AnalysisError, match=r"the revision does not exist.*\(404\).*Invalid rev id: nope"):
        HubSnapshot("https://hub.example", "org/m", revision="nope", client=client)
    with pytest.raises(AnalysisError, match="repository does not exist, or it is private"):
        HubSnapshot("https://hub.example", "org/other", client=client)
    snapshot.close()
    assert not client.is_closed  # a client passed in belongs to the caller
    client.close()
