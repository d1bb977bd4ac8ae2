"""The `hf` backend: transformers `generate`, batched with left padding, CPU or GPU.

Determinism is a contract (a resumed campaign must store the samples an uninterrupted one would):
each call seeds torch from its `seed` before generating, the batches of a call are cut the same
way every time, and adapters are loaded onto an untouched base model (never merged into it).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from engine.errors import UserError
from engine.models import load_model
from engine.problems import Problem
from engine.prompts import cut_at_stop, encode_prompt, format_prompt, output_to_completion, stop_strings
from engine.sampler import Generation, SamplingParams

if TYPE_CHECKING:
    from engine.config import CampaignConfig

# peft calls a transformers method that transformers 5 deprecates: noise in every engine log
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class _StopCriteria(StoppingCriteria):
    """Marks each sequence done at its stop (a stop string, or an end-of-sequence token).

    Records how many tokens each sequence generated up to and including its stop, and tells
    `generate` which sequences are done, so a batch ends as soon as every sequence has stopped.
    """

    def __init__(self, tokenizer, prompt_len: int, batch: int, style: str, stops: list[str], eos_ids: set[int]):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.style = style
        self.stops = stops
        self.eos_ids = eos_ids
        self.lengths: list[int | None] = [None] * batch  # tokens generated when the sequence stopped

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        n_new = input_ids.shape[1] - self.prompt_len
        pending = [i for i, length in enumerate(self.lengths) if length is None]
        if pending:
            rows = input_ids[:, self.prompt_len :].tolist()  # one device-to-host copy per step
            for i in pending:
                if rows[i][-1] in self.eos_ids:
                    self.lengths[i] = n_new
                elif cut_at_stop(self.tokenizer.decode(rows[i], skip_special_tokens=True), self.style, self.stops)[1]:
                    self.lengths[i] = n_new
        done = [length is not None for length in self.lengths]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _adapter_key(path: Path | None) -> tuple | None:
    """Identifies an adapter's content cheaply: its path and its weight file's size and mtime."""
    if path is None:
        return None
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.glob("adapter_model*"))]
    return (str(path.resolve()), tuple(stats))


class HFSampler:
    name = "hf"

    def __init__(self, cfg: "CampaignConfig", model=None, tokenizer=None):
        """Load the model of `cfg.model` (or use a given model and tokenizer, e.g. in tests)."""
        if model is None:
            model, tokenizer = load_model(cfg.model)
        self.base = model  # never modified: adapters are wrapped around it and unloaded again
        self.model = model
        self.tokenizer = tokenizer
        self.style = cfg.model.prompt_style
        self.stops = stop_strings(self.style)
        self.batch_size = cfg.sampling.batch_size
        self.adapter: Path | None = None
        self._adapter_key: tuple | None = None
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = {i for i in eos + [tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.stats = {"sequences": 0, "tokens": 0, "seconds": 0.0}  # for throughput reporting

    # ------------------------------------------------------------------ adapters
    def set_adapter(self, path: Path | None) -> None:
        """Sample from base + this LoRA adapter (None = the base). The previous adapter is removed
        completely first, so nothing of it leaks into the next round's samples."""
        path = Path(path) if path is not None else None
        key = _adapter_key(path)
        if key == self._adapter_key:
            return  # already loaded, and not rewritten since (a retrained round is reloaded)
        if self.model is not self.base:
            self.base = self.model.unload()  # strips the LoRA layers, base weights untouched
            self.model = self.base
        self.adapter, self._adapter_key = None, None
        if path is not None:
            try:
                from peft import PeftModel
            except ImportError:
                raise UserError("sampling a trained adapter needs peft: pip install peft") from None
            if not (path / "adapter_config.json").exists():
                raise UserError(f"no LoRA adapter at {path} (adapter_config.json missing); retrain that round")
            self.model = PeftModel.from_pretrained(self.base, str(path), is_trainable=False)
            self.model.eval()
            self.adapter, self._adapter_key = path, key

    # ------------------------------------------------------------------ generation
    def generate(
        self, problems: Sequence[Problem], n: int, params: SamplingParams, seed: int, round: int = 0, start: int = 0
    ) -> list[list[Generation]]:
        """n generations per problem (see engine.sampler.Sampler). `round` and `start` are unused:
        the runner folds them into `seed`."""
        prompts = [format_prompt(p, self.style, self.tokenizer) for p in problems]
        jobs = [(k, prompts[k]) for k in range(len(problems)) for _ in range(n)]  # each prompt n times, in order
        torch.manual_seed(seed % (2**63))  # one seed per call: the same call gives the same samples
        results: list[Generation] = []
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            outs = self._generate_batch([text for _, text in batch], params)
            results += [
                Generation(completion=output_to_completion(problems[k], out, self.style), output=out, n_tokens=m)
                for (k, _), (out, m) in zip(batch, outs, strict=True)
            ]
        return [results[k * n : (k + 1) * n] for k in range(len(problems))]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[tuple[str, int]]:
        """(output, n_tokens) per prompt: the text up to its stop, and the tokens generated through it."""
        started = time.time()
        ids = [encode_prompt(text, self.style, self.tokenizer) for text in prompts]
        width = max(len(x) for x in ids)
        # left padding: every prompt ends at the same position, where generation starts
        input_ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in ids], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        criteria = _StopCriteria(self.tokenizer, width, len(ids), self.style, self.stops, self.eos_ids)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            generation_config=self._generation_config(params),
            stopping_criteria=StoppingCriteriaList([criteria]),
        )
        results = []
        for i in range(len(ids)):
            length = criteria.lengths[i] or params.max_new_tokens
            new = out[i, width : width + length].tolist()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            output, _ = cut_at_stop(text, self.style, self.stops)
            results.append((output, len(new)))
        self.stats["sequences"] += len(ids)
        self.stats["tokens"] += sum(m for _, m in results)
        self.stats["seconds"] += time.time() - started
        return results

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        """Only what the campaign asks for: no top-k, no repetition penalty from the model's defaults."""
        common = dict(
            max_new_tokens=params.max_new_tokens,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        if params.temperature <= 0:
            return GenerationConfig(do_sample=False, **common)
        return GenerationConfig(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0, **common)

    def close(self) -> None:
        self.model = self.base = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
