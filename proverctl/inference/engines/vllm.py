"""vLLM (`vllm serve DIR --served-model-name NAME`): the GPU engine, continuous batching, `n` honoured.

Prefix caching is asked for explicitly (the k samples of a target share one prompt; vLLM 0.x before its
V1 engine had it off by default). `--data-parallel N` becomes vLLM's `--data-parallel-size N`: N engine
ranks of `--tensor-parallel-size` GPUs each, behind one OpenAI server that balances requests over them
(docs/serving/data_parallel_deployment.md in vLLM)."""

from __future__ import annotations

from pathlib import Path

from proverctl.errors import EnvironmentMissing
from proverctl.inference.engines import Engine, ServeOptions, register


class Vllm(Engine):
    name = "vllm"
    description = "vLLM on CUDA GPUs"
    needs_gpu = True

    def require(self) -> str:
        exe = self.executable()
        if exe is None:
            raise EnvironmentMissing("the vllm engine is not installed", hint="pip install 'proverctl[vllm]' (needs a CUDA GPU)")
        return exe

    def command(self, executable: str, model_dir: Path, served_name: str, options: ServeOptions) -> list[str]:
        cmd = [executable, "serve", str(model_dir), "--host", options.host, "--port", str(options.port),
               "--served-model-name", served_name, "--tensor-parallel-size", str(options.tensor_parallel_size), "--enable-prefix-caching"]
        if options.data_parallel_size > 1:
            cmd += ["--data-parallel-size", str(options.data_parallel_size)]
        if options.gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", str(options.gpu_memory_utilization)]
        if options.max_model_len is not None:
            cmd += ["--max-model-len", str(options.max_model_len)]
        return cmd


ENGINE = register(Vllm())
