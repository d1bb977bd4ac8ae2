"""The `vllm` backend: a vLLM engine on a GPU, with each round's LoRA adapter served on top of the
untouched base model (vLLM's multi-LoRA: no merge, no reload of the base between rounds).

Prompts are the token ids `engine.prompts` builds for every backend, so `hf` and `vllm` sample from
the same prompts. Each problem is one request with `n` samples and its own seed (derived from the
call's seed and the problem's position), so a call is reproducible however vLLM schedules it.

Stops: vLLM stops at plain strings. For completion prompts those are the style's stop strings. For
chat the stop is the fence that *closes* the first code block, which no plain string can tell from
an opening fence; the stop used is a bare fence on its own line ("\\n```\\n") and the model's end of
turn, and every text is then cut with `cut_at_stop` exactly as `hf` cuts it. A bare opening fence
after a newline (without a language tag) ends such a sample early; code models tag their blocks.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from engine.errors import UserError
from engine.models import load_tokenizer, plain_checkpoint, resolve_device
from engine.problems import Problem
from engine.prompts import cut_at_stop, encode_prompt, format_prompt, output_to_completion, stop_strings
from engine.sampler import Generation, SamplingParams, adapter_key

if TYPE_CHECKING:
    from engine.config import CampaignConfig

LORA_RANKS = (8, 16, 32, 64, 128, 256)  # the ranks vLLM's LoRA kernels are built for


def vllm_stops(style: str) -> list[str]:
    return ["\n```\n"] if style == "chat" else stop_strings(style)


def max_lora_rank(r: int) -> int:
    for rank in LORA_RANKS:
        if r <= rank:
            return rank
    raise UserError(f"train.lora_r = {r} is above vLLM's largest LoRA rank ({LORA_RANKS[-1]}); lower it or use backend = \"hf\"")


class VLLMSampler:
    name = "vllm"

    def __init__(self, cfg: "CampaignConfig", llm=None) -> None:
        """Start a vLLM engine for `cfg.model` (or use a given `llm`, e.g. in tests)."""
        if importlib.util.find_spec("vllm") is None:
            raise UserError('model.backend = "vllm" needs vllm: pip install "sdtui[vllm]" (or use backend = "hf")')
        from vllm.lora.request import LoRARequest

        self._LoRARequest = LoRARequest
        self.style = cfg.model.prompt_style
        self.stops = stop_strings(self.style)
        if llm is None:
            if not resolve_device(cfg.model.device).startswith("cuda"):
                raise UserError('model.backend = "vllm" needs a CUDA GPU; use backend = "hf" (or "auto") on this machine')
            from vllm import LLM

            llm = LLM(model=plain_checkpoint(cfg.model), dtype="auto" if cfg.model.dtype == "auto" else cfg.model.dtype,
                      seed=cfg.seed, enable_lora=True, max_lora_rank=max_lora_rank(cfg.train.lora_r), max_loras=1,
                      gpu_memory_utilization=cfg.model.gpu_memory)
        self.llm = llm
        self.tokenizer = load_tokenizer(cfg.model)
        self.lora = None  # the LoRARequest of the current adapter
        self._adapters: dict[tuple, int] = {}  # adapter_key -> vLLM's int id (one per adapter version)
        self.stats = {"sequences": 0, "tokens": 0, "seconds": 0.0}
        self.tick = None  # never called: vLLM generates a whole call at once

    def set_adapter(self, path: Path | None) -> None:
        """Serve this adapter from now on. A retrained round (same path, new files) gets a new id,
        so that vLLM never answers from the old weights it cached under the old one."""
        if path is None:
            self.lora = None
            return
        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise UserError(f"no LoRA adapter at {path} (adapter_config.json missing); retrain that round")
        key = adapter_key(path)
        if key not in self._adapters:
            self._adapters[key] = len(self._adapters) + 1  # vLLM's ids start at 1
        self.lora = self._LoRARequest(f"{path.name}-{self._adapters[key]}", self._adapters[key], str(path))

    def generate(
        self, problems: Sequence[Problem], n: int, params: SamplingParams, seed: int, round: int = 0, start: int = 0
    ) -> list[list[Generation]]:
        """n generations per problem (see engine.sampler.Sampler)."""
        from vllm import SamplingParams as VParams

        from engine.runner import derive_seed

        started = time.time()
        prompts = [{"prompt_token_ids": encode_prompt(format_prompt(p, self.style, self.tokenizer), self.style, self.tokenizer)}
                   for p in problems]
        vparams = [
            VParams(n=n, temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                    max_tokens=params.max_new_tokens, stop=vllm_stops(self.style), include_stop_str_in_output=True,
                    seed=derive_seed(seed, k))
            for k in range(len(problems))
        ]
        outs = self.llm.generate(prompts, vparams, use_tqdm=False, lora_request=self.lora)
        results = []
        for p, out in zip(problems, outs, strict=True):
            gens = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                output, _ = cut_at_stop(o.text, self.style, self.stops)
                gens.append(Generation(completion=output_to_completion(p, output, self.style), output=output,
                                       n_tokens=len(o.token_ids)))
            results.append(gens)
        self.stats["sequences"] += sum(len(g) for g in results)
        self.stats["tokens"] += sum(x.n_tokens for g in results for x in g)
        self.stats["seconds"] += time.time() - started
        return results

    def close(self) -> None:
        self.llm = None
