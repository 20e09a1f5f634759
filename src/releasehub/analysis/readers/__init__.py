"""Byte sources and the safetensors/GGUF header readers; `WeightsSummary` is their result.

Nothing here reads tensor data: a few small byte ranges per file are enough to know what a
release's weights are, however large they are and wherever they live.
"""

from releasehub.analysis.readers.gguf import (
    GGUFHeader,
    gguf_config,
    read_gguf_header,
    split_base_name,
    summarize_gguf,
)
from releasehub.analysis.readers.safetensors import (
    SafetensorsHeader,
    TensorInfo,
    WeightsSummary,
    parse_index,
    read_header,
    summarize_safetensors,
)
from releasehub.analysis.readers.source import (
    AnalysisError,
    ByteSource,
    BytesSource,
    FetchStats,
    HttpRangeSource,
    LocalFileSource,
    http_error,
)

__all__ = [
    "AnalysisError",
    "ByteSource",
    "BytesSource",
    "FetchStats",
    "GGUFHeader",
    "HttpRangeSource",
    "LocalFileSource",
    "SafetensorsHeader",
    "TensorInfo",
    "WeightsSummary",
    "gguf_config",
    "http_error",
    "parse_index",
    "read_gguf_header",
    "read_header",
    "split_base_name",
    "summarize_gguf",
    "summarize_safetensors",
]
