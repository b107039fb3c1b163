"""`transformers serve DIR`: the CPU / small-GPU engine. It names the model by the directory it was
given and ignores `n` (the client asks once per sample). Continuous batching is on: measured in
bench/README.md, without it concurrent requests run one after another."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from proverctl.errors import EnvironmentMissing
from proverctl.inference.engines import Engine, ServeOptions, register


CACHE_BLOCK_TOKENS = 256


class Transformers(Engine):
    name = "transformers"
    description = "transformers serve (CPU or a small GPU)"

    def require(self) -> str:
        exe = self.executable()
        if exe is None or importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
            raise EnvironmentMissing("the transformers engine is not installed (needs transformers' serving extra)",
                                     hint="pip install 'proverctl[hf]' (it brings PyPI's torch, a CUDA build on Linux; for "
                                          "the CPU build install torch first: pip install torch --index-url "
                                          "https://download.pytorch.org/whl/cpu)")
        return exe

    def command(self, executable: str, model_dir: Path, served_name: str, options: ServeOptions) -> list[str]:
        cmd = [executable, "serve", str(model_dir), "--host", options.host, "--port", str(options.port)]
        if options.device:
            cmd += ["--device", options.device]
        if not options.continuous_batching:
            return cmd
        cmd += ["--continuous-batching"]
        if options.cache_tokens:
            # Left to itself the paged cache takes a share of the machine's free memory (8-15 GB for a
            # 2-layer test model on a 24 GB machine); a fixed number of blocks bounds it.
            blocks = max(1, -(-options.cache_tokens // CACHE_BLOCK_TOKENS))
            cmd += ["--cb-block-size", str(CACHE_BLOCK_TOKENS), "--cb-num-blocks", str(blocks)]
        return cmd

    def model_id(self, model_dir: Path, served_name: str) -> str:
        return str(model_dir)


ENGINE = register(Transformers())
