"""GPU memory estimates: weights + KV cache at a given context, from a model's config.json.

The figures are estimates for planning (`models show`, `serve` refusing a model that cannot fit), not
a promise: engines add activation buffers, CUDA graphs and fragmentation on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPE_BYTES = {
    "float32": 4, "fp32": 4,
    "bfloat16": 2, "float16": 2, "fp16": 2, "bf16": 2,
    "float8_e4m3fn": 1, "fp8": 1, "int8": 1,
}
# CUDA context, engine workspace and activations, roughly, on top of weights and KV cache.
RUNTIME_OVERHEAD_BYTES = int(2.0 * 2**30)
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int | None
    kv_bytes_per_token: int | None
    context: int
    sequences: int

    @property
    def kv_bytes(self) -> int | None:
        if self.kv_bytes_per_token is None:
            return None
        return self.kv_bytes_per_token * self.context * self.sequences

    @property
    def total_bytes(self) -> int | None:
        if self.weights_bytes is None or self.kv_bytes is None:
            return None
        return self.weights_bytes + self.kv_bytes + RUNTIME_OVERHEAD_BYTES

    def as_dict(self) -> dict[str, Any]:
        def gib(value: int | None) -> float | None:
            return None if value is None else round(value / GIB, 2)

        return {
            "context": self.context,
            "sequences": self.sequences,
            "weights_gib": gib(self.weights_bytes),
            "kv_cache_gib": gib(self.kv_bytes),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "overhead_gib": gib(RUNTIME_OVERHEAD_BYTES),
            "total_gib": gib(self.total_bytes),
        }


def read_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


def config_dtype(config: dict[str, Any]) -> str | None:
    quant = config.get("quantization_config") or {}
    if quant.get("quant_method") == "fp8":
        return "float8_e4m3fn"
    dtype = config.get("torch_dtype") or config.get("dtype")
    return str(dtype) if dtype else None


def kv_bytes_per_token(config: dict[str, Any], kv_dtype_bytes: int = 2) -> int | None:
    """KV cache bytes one token costs across all layers (MLA-aware for DeepSeek-V3-style models)."""
    layers = config.get("num_hidden_layers")
    if not layers:
        return None
    if config.get("kv_lora_rank"):
        # Multi-head latent attention caches one compressed vector (+ rope part) per layer.
        return layers * (config["kv_lora_rank"] + config.get("qk_rope_head_dim", 0)) * kv_dtype_bytes
    heads = config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    if not (kv_heads and head_dim):
        return None
    return 2 * layers * kv_heads * head_dim * kv_dtype_bytes


def weight_bytes_on_disk(model_dir: Path) -> int | None:
    files = list(model_dir.glob("*.safetensors")) or list(model_dir.glob("pytorch_model*.bin"))
    return sum(f.stat().st_size for f in files) if files else None


def estimate(
    config: dict[str, Any] | None,
    *,
    context: int,
    sequences: int = 1,
    weights_bytes: int | None = None,
    parameters_b: float | None = None,
    dtype: str | None = None,
) -> MemoryEstimate:
    """Estimate GPU memory; weights come from the files on disk when known, else parameters × dtype."""
    if weights_bytes is None and parameters_b is not None:
        weights_bytes = int(parameters_b * 1e9 * DTYPE_BYTES.get(dtype or "bfloat16", 2))
    per_token = kv_bytes_per_token(config) if config else None
    return MemoryEstimate(weights_bytes, per_token, context, sequences)
