"""Files of a tiny model repo, generated (no download): a Llama config, a word-level tokenizer with a
chat template, generation config, and real safetensors weights, plus files `pull` must skip."""

from __future__ import annotations

import json
import random
import struct

from hubserver import Repo

VOCAB = ["<s>", "</s>", "<unk>", "theorem", "by", "sorry", ":=", "lean4", "```", "simp", "linarith", "norm_num"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def safetensors_bytes(tensors: dict[str, tuple[list[int], list[float] | bytes]]) -> bytes:
    """Encode tensors in the safetensors format (8-byte header length, JSON header, data):
    float32 from a list of floats, uint8 from bytes."""
    header: dict = {}
    data = b""
    for name, (shape, values) in tensors.items():
        if isinstance(values, bytes):
            blob, dtype = values, "U8"
        else:
            blob, dtype = struct.pack(f"<{len(values)}f", *values), "F32"
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


def tiny_files(hidden: int = 16, vocab: int = len(VOCAB), big: int = 300_000) -> dict[str, bytes]:
    rng = random.Random(0)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 512, "vocab_size": vocab, "torch_dtype": "float32",
        "bos_token_id": 0, "eos_token_id": 1,
    }
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(VOCAB)}, "unk_token": "<unk>"},
    }
    tokenizer_config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "chat_template": CHAT_TEMPLATE,
                        "tokenizer_class": "PreTrainedTokenizerFast"}
    weights = safetensors_bytes({
        "model.embed_tokens.weight": ([vocab, hidden], [rng.uniform(-1, 1) for _ in range(vocab * hidden)]),
        "padding.blob": ([big], rng.randbytes(big)),
    })
    return {
        "config.json": json.dumps(config, indent=2).encode(),
        "generation_config.json": json.dumps({"bos_token_id": 0, "eos_token_id": 1}).encode(),
        "tokenizer.json": json.dumps(tokenizer).encode(),
        "tokenizer_config.json": json.dumps(tokenizer_config).encode(),
        "model.safetensors": weights,
        # Files pull must not fetch: docs, another weight format, original checkpoints.
        "README.md": b"# tiny\n",
        "pytorch_model.bin": b"\0" * 1024,
        "original/consolidated.00.pth": b"\0" * 2048,
    }


def tiny_repo(repo_id: str, big: int = 300_000, **kwargs) -> Repo:
    """`big`: bytes of padding in the weights; over 10 MB makes huggingface_hub write a first chunk
    (it streams in 10 MB chunks), which resume tests need."""
    return Repo(repo_id=repo_id, files=tiny_files(big=big), lfs={"model.safetensors", "pytorch_model.bin", "original/consolidated.00.pth"}, **kwargs)


def build_tiny_model(directory, *, seed: int = 0) -> None:
    """Save a tiny random Llama (2 layers, hidden 32) with a byte-level BPE tokenizer and a chat
    template into `directory`: a real model `transformers serve` and vLLM can load (seconds on CPU)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [
        "theorem foo (x : ℕ) : x + 0 = x := by\n  simp\n", "```lean4\nimport Mathlib\n```", "Complete the following Lean 4 code:",
        "norm_num linarith nlinarith omega ring_nf field_simp", "have h : a = b := by sorry",
    ] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
