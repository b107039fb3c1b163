#!/usr/bin/env python3
"""Output tokens/s through proverctl's client for 1 and 64 concurrent requests (the median of
`--repeats` bursts after a warm-up, not one burst).

Engines: `--engine transformers` (starts `transformers serve`, with and without continuous batching
unless --cb is given), `--engine vllm` (starts `vllm serve`; where vLLM is installed), or `--endpoint
URL --served-model ID` (any running OpenAI-compatible server). `--in-process` measures transformers'
`model.generate` directly (for machines without fastapi/uvicorn).

The model is a random one of `--shape`: `deepseek-7b` (Llama, 30 layers, hidden 4096, intermediate
11008, 32 heads, vocab 102400: DeepSeek-Prover-V2-7B's shape, needs a GPU) or `tiny` (runs on CPU).

Usage: python bench/engine_throughput.py --engine transformers --shape tiny --device cpu
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SHAPES = {
    "deepseek-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32,
                        num_key_value_heads=32, vocab_size=102400),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}


def build_model(shape: str, directory: Path, dtype: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tinymodel import build_tiny_model

    build_tiny_model(directory)  # tokenizer + chat template (and the tiny weights)
    if shape == "tiny":
        return
    tokenizer_vocab = json.loads((directory / "config.json").read_text())["vocab_size"]
    config = LlamaConfig(max_position_embeddings=4096, bos_token_id=0, eos_token_id=1, pad_token_id=2,
                         **{**SHAPES[shape], "vocab_size": max(tokenizer_vocab, SHAPES[shape]["vocab_size"])})
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(directory)


async def measure(url: str, model_id: str, concurrency: int, max_tokens: int, repeats: int = 3) -> tuple[float, int, float]:
    """Median over `repeats` bursts (after a warm-up) of output tokens/s for `concurrency` requests at once:
    (tokens/s, tokens, wall s) of the median burst."""
    from proverctl.inference.client import GenerationClient
    from proverctl.prompts.formats import Prompt

    prompt = Prompt("deepseek-v2", "cot", messages=[{"role": "user", "content": "Complete the following Lean 4 code: theorem t"}],
                    sampling={"temperature": 1.0, "top_p": 0.95, "max_tokens": max_tokens})
    bursts = []
    async with GenerationClient(url, model_id, concurrency=max(concurrency, 1)) as client:
        await client.complete(prompt, 0)  # warm-up
        for repeat in range(repeats):
            start = time.perf_counter()
            results = await asyncio.gather(*(client.complete(prompt, 1000 * repeat + i) for i in range(concurrency)))
            wall = time.perf_counter() - start
            tokens = sum(r.completion_tokens or 0 for r in results)
            bursts.append((tokens / wall, tokens, wall))
    return sorted(bursts)[len(bursts) // 2]


def serve_and_measure(engine: str, model_dir: Path, args, cb: bool) -> list[str]:
    from proverctl.inference import engines, sessions
    from proverctl.paths import Paths

    paths = Paths.resolve()
    chosen = engines.get(engine)
    exe = chosen.require()
    port = sessions.free_port("127.0.0.1")
    command = chosen.command(exe, model_dir, "bench", engines.ServeOptions(port=port, device=args.device, continuous_batching=cb))
    model_id = chosen.model_id(model_dir, "bench")
    record, proc = sessions.start_session(name=f"bench-{port}", model=str(model_dir), model_dir=model_dir, engine=engine,
                                          command=command, model_id=model_id, host="127.0.0.1", port=port, family=None, paths=paths)
    rows = []
    try:
        sessions.wait_ready(record, proc, 1800)
        for concurrency in args.concurrency:
            rate, tokens, wall = asyncio.run(measure(record.url, model_id, concurrency, args.max_tokens, args.repeats))
            label = f"{engine}{' +cb' if cb else ''}"
            rows.append(f"{label:18} {concurrency:5} {tokens:8} {wall:8.2f} {rate:10.1f}")
    finally:
        sessions.stop_sessions(record.name, paths=paths)
    return rows


def in_process(model_dir: Path, args) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype)).to(device)
    rows = []
    for batch in args.concurrency:
        ids = tokenizer(["theorem t : 1 = 1 := by"] * batch, return_tensors="pt").to(device)
        model.generate(**ids, max_new_tokens=8, do_sample=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(**ids, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens, do_sample=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        tokens = (out.shape[1] - ids["input_ids"].shape[1]) * batch
        rows.append(f"{'generate (in-proc)':18} {batch:5} {tokens:8} {wall:8.2f} {tokens / wall:10.1f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--endpoint")
    parser.add_argument("--served-model", help="model id at --endpoint")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device")
    parser.add_argument("--cb", choices=["on", "off", "both"], default="both", help="transformers: continuous batching")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="bursts per concurrency; the median is printed")
    args = parser.parse_args()
    print(f"{'engine':18} {'conc':>5} {'tokens':>8} {'wall s':>8} {'tok/s':>10}")
    if args.endpoint:
        for concurrency in args.concurrency:
            rate, tokens, wall = asyncio.run(measure(args.endpoint, args.served_model, concurrency, args.max_tokens, args.repeats))
            print(f"{'endpoint':18} {concurrency:5} {tokens:8} {wall:8.2f} {rate:10.1f}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / f"random-{args.shape}"
        model_dir.mkdir()
        build_model(args.shape, model_dir, args.dtype)
        if args.in_process:
            rows = in_process(model_dir, args)
        elif args.engine == "vllm":
            rows = serve_and_measure("vllm", model_dir, args, cb=False)
        else:
            modes = {"on": [True], "off": [False], "both": [False, True]}[args.cb]
            rows = [row for cb in modes for row in serve_and_measure("transformers", model_dir, args, cb)]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
