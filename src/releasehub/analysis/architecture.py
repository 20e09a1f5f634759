"""Shapes and parameter counts of a decoder-only transformer, from `config.json` alone.

`architecture_from_config` normalises the many spellings of the Hugging Face configs
(`n_embd`/`hidden_size`, `num_local_experts`/`n_routed_experts`/`num_experts`, nested
`text_config`, ...) into one `Architecture`. Its methods count parameters the way the
`transformers` implementation instantiates them (checked against meta-device instantiations in
the tests) and give the KV cache each layer keeps per token.

What is modelled:
- attention: multi-head, grouped-query and multi-query (`num_key_value_heads`), multi-head
  latent attention (DeepSeek V2/V3: `q_lora_rank`, `kv_lora_rank`, `qk_rope_head_dim`, ...),
  `head_dim` when it differs from hidden/heads, q/k norms (Qwen3, Gemma 3), q/k/v biases (Qwen2);
- MLP: gated (SwiGLU/GeGLU, three matrices), mixture of experts with routed and shared experts,
  dense leading layers (`first_k_dense_replace`) and sparse-step layouts (Qwen MoE);
- layers: full attention, sliding-window attention (capped KV cache), and layers that keep no
  growing KV cache (linear attention, Mamba) in hybrid models via `layer_types`;
- tied or untied input/output embeddings.

Multimodal configs: the language model comes from `text_config`; a SigLIP or CLIP vision tower
(`vision_config`) and the Gemma 3 or LLaVA projector are counted too. Other encoders (audio) are
not, and `notes` says so.

Pure: no I/O, no imports from the web or database layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .readers.source import AnalysisError

FULL = "full_attention"
SLIDING = "sliding_attention"
# Layer kinds whose state does not grow with the context (no KV cache per token).
STATELESS_KINDS = frozenset({"linear_attention", "mamba", "mamba2", "conv", "recurrent", "ssm"})

# Model types whose configs omit `tie_word_embeddings` but whose classes tie them.
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "bloom", "falcon", "gpt_bigcode",
                              "starcoder2", "olmo", "opt"})
# Model types with biases on the q/k/v projections whatever `attention_bias` says.
_QKV_BIAS = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"})
# Model types with a norm on queries and keys (one weight vector of head_dim each).
_QK_NORM = frozenset({"qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2", "qwen3_next"})
# Model types with four norms per layer (pre/post attention and pre/post feed-forward).
_FOUR_NORMS = frozenset({"gemma2", "gemma3", "gemma3_text"})
# Model types whose sliding window (when set) applies to every attention layer.
_SLIDING_ALL = frozenset({"mistral", "mixtral", "phi3", "starcoder2"})


class UnsupportedConfig(AnalysisError):
    """A config.json that does not describe a transformer releasehub can count."""


@dataclass(frozen=True)
class Attention:
    kind: str                 # "mha" | "gqa" | "mqa" | "mla"
    heads: int
    kv_heads: int
    head_dim: int             # query/key width per head (MLA: nope + rope)
    v_head_dim: int
    bias: bool = False
    qk_norm: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None

    def parameters(self, hidden: int) -> int:
        if self.kind == "mla":
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            q_out = self.heads * self.head_dim
            q = (hidden * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * q_out
                 if self.q_lora_rank else hidden * q_out)
            kv_a = hidden * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.heads * ((self.qk_nope_head_dim or 0) + self.v_head_dim)
            o = self.heads * self.v_head_dim * hidden
            return q + kv_a + kv_b + o
        q_width = self.heads * self.head_dim
        kv_width = self.kv_heads * self.head_dim
        weights = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
        biases = (q_width + 2 * kv_width) if self.bias else 0
        norms = 2 * self.head_dim if self.qk_norm else 0
        return weights + biases + norms

    def kv_elements_per_token(self) -> int:
        """Cached values per token per layer: keys and values, or MLA's compressed latent plus rope key."""
        if self.kind == "mla":
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.kv_heads * (self.head_dim + self.v_head_dim)


@dataclass(frozen=True)
class Experts:
    routed: int
    per_token: int
    intermediate: int
    shared: int = 0                    # shared experts of `intermediate` width each (DeepSeek)
    shared_intermediate: int = 0       # a single shared expert of its own width (Qwen2-MoE)
    shared_gate: bool = False          # Qwen2-MoE's sigmoid gate on the shared expert
    router_bias: bool = False          # DeepSeek V3's e_score_correction_bias


@dataclass(frozen=True)
class ParameterCount:
    total: int
    active: int
    embedding: int          # input embeddings plus an untied output head
    attention: int
    mlp: int                # dense MLPs plus all experts and routers
    norms: int
    encoder: int = 0        # vision tower and projector

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "active": self.active, "embedding": self.embedding,
                "attention": self.attention, "mlp": self.mlp, "norms": self.norms, "encoder": self.encoder}


@dataclass(frozen=True)
class Architecture:
    model_type: str
    layers: int
    hidden: int
    vocab: int
    intermediate: int
    attention: Attention
    layer_kinds: tuple[str, ...]              # one per layer: FULL, SLIDING or a stateless kind
    sliding_window: int | None
    experts: Experts | None
    moe_layers: tuple[bool, ...]              # one per layer: True where the MLP is a mixture of experts
    tied_embeddings: bool
    max_context: int | None
    mlp_bias: bool = False
    norms_per_layer: int = 2
    encoder_parameters: int = 0               # vision tower and projector of a multimodal model
    notes: tuple[str, ...] = field(default=())

    # -- parameters -------------------------------------------------------------------------

    def _dense_mlp(self, width: int) -> int:
        return 3 * self.hidden * width + (2 * width + self.hidden if self.mlp_bias else 0)

    def _moe_mlp(self) -> tuple[int, int]:
        """(all parameters, parameters one token uses) of one mixture-of-experts layer."""
        e = self.experts
        assert e is not None
        expert = self._dense_mlp(e.intermediate)
        router = e.routed * self.hidden + (e.routed if e.router_bias else 0)
        shared = e.shared * expert
        if e.shared_intermediate:
            shared += self._dense_mlp(e.shared_intermediate)
        if e.shared_gate:
            shared += self.hidden
        return router + shared + e.routed * expert, router + shared + e.per_token * expert

    def parameters(self) -> ParameterCount:
        embedding = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        attention_layers = sum(1 for kind in self.layer_kinds if kind in (FULL, SLIDING))
        if attention_layers != self.layers:
            raise UnsupportedConfig(
                f"{self.model_type}: {self.layers - attention_layers} of {self.layers} layers are "
                f"{sorted(set(self.layer_kinds) - {FULL, SLIDING})}; releasehub cannot count their parameters from "
                "config.json. Analyse the weights (safetensors or GGUF headers) instead."
            )
        attention = self.layers * self.attention.parameters(self.hidden)
        norms = self.layers * self.norms_per_layer * self.hidden + self.hidden
        mlp = active_mlp = 0
        for is_moe in self.moe_layers:
            if is_moe:
                total_layer, active_layer = self._moe_mlp()
            else:
                total_layer = active_layer = self._dense_mlp(self.intermediate)
            mlp += total_layer
            active_mlp += active_layer
        total = embedding + attention + mlp + norms + self.encoder_parameters
        return ParameterCount(total=total, active=total - mlp + active_mlp, embedding=embedding,
                              attention=attention, mlp=mlp, norms=norms, encoder=self.encoder_parameters)

    # -- KV cache ----------------------------------------------------------------------------

    def kv_bytes_per_token(self, bytes_per_element: float) -> int:
        """KV cache one more token adds across all layers (sliding layers still inside their window)."""
        per_layer = self.attention.kv_elements_per_token() * bytes_per_element
        return int(round(per_layer * sum(1 for kind in self.layer_kinds if kind in (FULL, SLIDING))))

    def kv_bytes(self, context: int, bytes_per_element: float, batch: int = 1) -> int:
        """KV cache of `batch` sequences of `context` tokens; sliding-window layers keep at most the window."""
        per_layer_token = self.attention.kv_elements_per_token() * bytes_per_element
        tokens = 0
        for kind in self.layer_kinds:
            if kind == FULL:
                tokens += context
            elif kind == SLIDING:
                tokens += min(context, self.sliding_window or context)
        return int(round(per_layer_token * tokens * batch))

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for kind in self.layer_kinds:
            kinds[kind] = kinds.get(kind, 0) + 1
        a = self.attention
        out: dict[str, Any] = {
            "model_type": self.model_type, "layers": self.layers, "hidden_size": self.hidden,
            "vocab_size": self.vocab, "intermediate_size": self.intermediate,
            "attention": {"kind": a.kind, "heads": a.heads, "kv_heads": a.kv_heads, "head_dim": a.head_dim,
                          "v_head_dim": a.v_head_dim},
            "layer_kinds": kinds, "sliding_window": self.sliding_window,
            "tied_embeddings": self.tied_embeddings, "max_context": self.max_context,
        }
        if a.kind == "mla":
            out["attention"].update(q_lora_rank=a.q_lora_rank, kv_lora_rank=a.kv_lora_rank,
                                    qk_rope_head_dim=a.qk_rope_head_dim, qk_nope_head_dim=a.qk_nope_head_dim)
        if self.experts is not None:
            e = self.experts
            out["experts"] = {"routed": e.routed, "per_token": e.per_token, "shared": e.shared,
                              "intermediate_size": e.intermediate, "moe_layers": sum(self.moe_layers)}
        return out


# ---------------------------------------------------------------------------------------------
# config.json -> Architecture


def _first(config: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return None


def _int(config: Mapping[str, Any], *keys: str, required: bool = True) -> int | None:
    value = _first(config, *keys)
    if value is None:
        if required:
            raise UnsupportedConfig(f"config.json has none of {', '.join(keys)}; it does not look like a "
                                    "decoder-only transformer config")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or int(value) != value:
        raise UnsupportedConfig(f"config.json: {keys[0]} must be a non-negative integer, got {value!r}")
    return int(value)


def _layer_kinds(config: Mapping[str, Any], model_type: str, layers: int, window: int | None) -> tuple[str, ...]:
    declared = config.get("layer_types")
    if isinstance(declared, list) and declared:
        if len(declared) != layers:
            raise UnsupportedConfig(f"config.json: layer_types has {len(declared)} entries for {layers} layers")
        kinds = []
        for kind in declared:
            kind = str(kind)
            if kind in ("full_attention", "attention", "global", "full"):
                kinds.append(FULL)
            elif kind in ("sliding_attention", "sliding", "local", "chunked_attention"):
                kinds.append(SLIDING)
            else:
                kinds.append(kind)
        return tuple(kinds)
    if not window:
        return (FULL,) * layers
    if model_type == "gemma2":
        return tuple(SLIDING if i % 2 == 0 else FULL for i in range(layers))
    if model_type in ("gemma3", "gemma3_text"):
        pattern = _int(config, "sliding_window_pattern", required=False) or 6
        return tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(layers))
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        if not config.get("use_sliding_window"):
            return (FULL,) * layers
        first_sliding = _int(config, "max_window_layers", required=False) or 0
        return tuple(SLIDING if i >= first_sliding else FULL for i in range(layers))
    if model_type in _SLIDING_ALL:
        return (SLIDING,) * layers
    return (FULL,) * layers


def _experts(config: Mapping[str, Any], model_type: str, layers: int,
             intermediate: int) -> tuple[Experts | None, tuple[bool, ...]]:
    routed = _int(config, "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts", required=False)
    if not routed or routed <= 1:
        return None, (False,) * layers
    per_token = _int(config, "num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k", required=False)
    if not per_token:
        raise UnsupportedConfig(f"config.json declares {routed} experts but not how many each token uses "
                                "(num_experts_per_tok)")
    width = _int(config, "moe_intermediate_size", required=False) or intermediate
    experts = Experts(
        routed=routed, per_token=per_token, intermediate=width,
        shared=_int(config, "n_shared_experts", required=False) or 0,
        shared_intermediate=_int(config, "shared_expert_intermediate_size", required=False) or 0,
        shared_gate=model_type == "qwen2_moe" and bool(config.get("shared_expert_intermediate_size")),
        router_bias=model_type == "deepseek_v3" or config.get("topk_method") == "noaux_tc",
    )
    return experts, tuple(_is_moe_layer(config, i) for i in range(layers))


def _is_moe_layer(config: Mapping[str, Any], index: int) -> bool:
    """Whether layer `index` has a mixture of experts, by every layout key the families use together:
    dense leading layers (`first_k_dense_replace`: DeepSeek, GLM-4.5, Kimi), listed dense layers
    (`mlp_only_layers`: Qwen MoE), every n-th layer counted from 0 (`moe_layer_freq`: DeepSeek) or from 1
    (`decoder_sparse_step`: Qwen MoE)."""
    if index < (_int(config, "first_k_dense_replace", required=False) or 0):
        return False
    if index in {int(i) for i in config.get("mlp_only_layers") or []}:
        return False
    frequency = _int(config, "moe_layer_freq", required=False)
    if frequency:
        return index % frequency == 0
    step = _int(config, "decoder_sparse_step", required=False)
    return (index + 1) % step == 0 if step else True


def _vision_parameters(vision: Mapping[str, Any], text_hidden: int, outer_type: str) -> int | None:
    """A SigLIP/CLIP vision transformer plus the Gemma 3 or LLaVA projector; None if not one of those."""
    kind = str(vision.get("model_type") or "")
    if kind not in ("siglip_vision_model", "clip_vision_model"):
        return None
    h = _int(vision, "hidden_size")
    width = _int(vision, "intermediate_size")
    layers = _int(vision, "num_hidden_layers")
    patch = _int(vision, "patch_size")
    image = _int(vision, "image_size")
    channels = _int(vision, "num_channels", required=False) or 3
    assert h is not None and width is not None and layers is not None and patch and image
    patches = (image // patch) ** 2
    layer = 4 * h * h + 4 * h + 2 * h * width + width + h + 4 * h
    if kind == "siglip_vision_model":
        total = channels * patch * patch * h + h + patches * h + layers * layer + 2 * h
        if vision.get("vision_use_head", True):
            return None  # the attention-pooling head is not modelled
    else:
        total = h + channels * patch * patch * h + (patches + 1) * h + 2 * h + layers * layer + 2 * h
    if outer_type == "gemma3":
        total += h * text_hidden + h
    elif outer_type.startswith("llava"):
        total += h * text_hidden + text_hidden + text_hidden * text_hidden + text_hidden
    else:
        return None
    return total


def architecture_from_config(config: Mapping[str, Any]) -> Architecture:
    """Normalise a transformers-style config (or GGUF metadata turned into one) into an Architecture."""
    if not isinstance(config, Mapping):
        raise UnsupportedConfig("config.json must be a JSON object")
    notes: list[str] = []
    outer_type = str(config.get("model_type") or "")
    text = config.get("text_config")
    vision = config.get("vision_config")
    encoder = 0
    if isinstance(text, Mapping) and text.get("hidden_size"):
        counted = (_vision_parameters(vision, int(text["hidden_size"]), outer_type)
                   if isinstance(vision, Mapping) else None)
        if counted is None:
            notes.append(f"{outer_type or 'This model'} is multimodal; only its language model (text_config) is "
                         "counted from config.json, not its other encoders.")
        else:
            encoder = counted
        merged = dict(text)
        for key in ("tie_word_embeddings", "torch_dtype", "dtype"):
            if key not in merged and key in config:
                merged[key] = config[key]
        config = merged
    model_type = str(config.get("model_type") or outer_type or "unknown")

    hidden = _int(config, "hidden_size", "n_embd", "d_model", "dim")
    layers = _int(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = _int(config, "num_attention_heads", "n_head", "num_heads", "n_heads")
    vocab = _int(config, "vocab_size", "padded_vocab_size")
    assert hidden is not None and layers is not None and heads is not None and vocab is not None
    if heads == 0 or layers == 0 or hidden == 0:
        raise UnsupportedConfig("config.json: hidden size, layers and attention heads must be positive")
    intermediate = _int(config, "intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", required=False)
    if intermediate is None:
        intermediate = 4 * hidden
        notes.append("config.json gives no intermediate size; 4 x hidden size assumed.")
    kv_heads = _int(config, "num_key_value_heads", "n_kv_heads", "num_kv_heads", required=False)
    if kv_heads is None:
        kv_heads = 1 if config.get("multi_query") else heads
    if kv_heads == 0 or heads % kv_heads:
        raise UnsupportedConfig(f"config.json: {heads} attention heads cannot be shared by {kv_heads} KV heads")

    kv_lora_rank = _int(config, "kv_lora_rank", required=False)
    if kv_lora_rank:
        rope = _int(config, "qk_rope_head_dim")
        nope = _int(config, "qk_nope_head_dim")
        v_dim = _int(config, "v_head_dim")
        assert rope is not None and nope is not None and v_dim is not None
        attention = Attention(kind="mla", heads=heads, kv_heads=heads, head_dim=rope + nope, v_head_dim=v_dim,
                              q_lora_rank=_int(config, "q_lora_rank", required=False), kv_lora_rank=kv_lora_rank,
                              qk_rope_head_dim=rope, qk_nope_head_dim=nope)
    else:
        head_dim = _int(config, "head_dim", "attention_head_dim", required=False) or hidden // heads
        kind = "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa")
        attention = Attention(kind=kind, heads=heads, kv_heads=kv_heads, head_dim=head_dim, v_head_dim=head_dim,
                              bias=model_type in _QKV_BIAS or bool(config.get("attention_bias")),
                              qk_norm=model_type in _QK_NORM)

    window = _int(config, "sliding_window", "attention_window", required=False) or None
    layer_kinds = _layer_kinds(config, model_type, layers, window)
    if SLIDING in layer_kinds and not window:
        raise UnsupportedConfig("config.json declares sliding-window layers but no sliding_window size")
    experts, moe_layers = _experts(config, model_type, layers, intermediate)

    tied = config.get("tie_word_embeddings")
    if tied is None:
        tied = model_type in _TIED_BY_DEFAULT
    max_context = _int(config, "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length",
                       required=False)
    scaling = config.get("rope_scaling") or {}
    if isinstance(scaling, Mapping) and max_context:
        original = scaling.get("original_max_position_embeddings")
        factor = scaling.get("factor")
        rope_kind = scaling.get("rope_type") or scaling.get("type")
        if rope_kind == "yarn" and isinstance(original, int) and isinstance(factor, (int, float)):
            stretched = int(original * factor)
            if stretched > max_context:
                notes.append(f"Context {stretched:,} tokens with YaRN (factor {factor:g} over {original:,}); "
                             f"config.json alone says {max_context:,}.")
                max_context = stretched
    return Architecture(
        model_type=model_type, layers=layers, hidden=hidden, vocab=vocab, intermediate=intermediate,
        attention=attention, layer_kinds=layer_kinds, sliding_window=window, experts=experts,
        moe_layers=moe_layers, tied_embeddings=bool(tied), max_context=max_context,
        mlp_bias=bool(config.get("mlp_bias")),
        norms_per_layer=4 if model_type in _FOUR_NORMS else 2, encoder_parameters=encoder, notes=tuple(notes),
    )
