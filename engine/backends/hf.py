"""The `hf` backend: a plain decode loop over a transformers model, CPU or GPU.

One `generate` call is one unit of the runner (a few problems x n samples, at most `batch_size`
sequences; larger calls are cut into consecutive batches). A batch is sampled like this
(docs/performance.md has the measurements behind each step):

1. prefill: each distinct prompt goes through the model once (left-padded to the longest, only the
   last position's logits computed), and its KV cache is copied to its n rows;
2. decode: one forward per step for the rows still running, into a KV cache allocated once for the
   whole batch (no per-step concatenation); temperature + top-p sampling with transformers'
   semantics (`TemperatureLogitsWarper`, `TopPLogitsWarper`, softmax, multinomial), without sorting
   the whole vocabulary; argmax at temperature 0;
3. a row stops at an end-of-sequence token, at its stop (`engine.prompts.cut_at_stop` on its text),
   or at max_new_tokens, and is dropped from the batch and the cache right away, so the batch
   shrinks as rows finish and ends with its last row.

On CPUs with native bf16 matrix units (AMX), `model.dtype = "auto"` samples in bf16: ~2x faster
steps than fp32 there, with the same pass rate (measured).

Determinism is a contract (a resumed campaign must store the samples an uninterrupted one would):
each call draws from its own generator seeded with `seed`, the batches of a call are cut the same
way every time, and adapters are loaded onto an untouched base model: on a CPU merged into a copy
of it (1.22x faster decode steps there, measured), on a GPU wrapped around it unmerged.
"""

from __future__ import annotations

import copy
import inspect
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from engine.errors import UserError
from engine.models import load_model, resolve_device
from engine.problems import Problem
from engine.prompts import cut_at_stop, encode_prompt, format_prompt, output_to_completion, stop_strings
from engine.sampler import TICK_SECONDS, Generation, SamplingParams, adapter_key

if TYPE_CHECKING:
    from engine.config import CampaignConfig

# peft calls a transformers method that transformers 5 deprecates: noise in every engine log
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX bf16 tiles (Sapphire Rapids and later), where bf16 matmuls are fast."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def sampling_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The dtype to sample in when the config says `auto` on CPU (None = keep the model's)."""
    if dtype == "auto" and device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


# ---------------------------------------------------------------------------- sampling


def pick_tokens(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of each row from fp32 logits [rows, vocab]: argmax at temperature 0, else a
    draw from softmax(logits / temperature) restricted to the top-p nucleus, as transformers samples
    (`TemperatureLogitsWarper`, `TopPLogitsWarper`, softmax, multinomial)."""
    if params.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / params.temperature if params.temperature != 1.0 else logits, dim=-1)
    if params.top_p >= 1.0:
        return draw(probs, generator)
    probs, ids = nucleus(probs, params.top_p)
    return ids.gather(1, draw(probs, generator)[:, None]).squeeze(1)


def nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-p nucleus of each row: (probabilities, token ids) of the most likely tokens, falling,
    with 0 for those outside it. transformers' `TopPLogitsWarper` sorts the whole vocabulary and
    drops the tokens whose rising cumulative probability stays <= 1 - top_p, keeping at least one;
    that is, it keeps a token when the more likely tokens hold less than top_p. Those tokens are
    among the k most likely as soon as these hold top_p, so only they are sorted (`topk`, k = 64,
    more if needed): sorting 49152 logits per row took ~5 ms, longer than a decode step's matmuls."""
    vocab = probs.shape[-1]
    # the least likely tokens, up to 1 - top_p of the total, go; in float64, so that the boundary
    # falls where transformers' rising fp32 sum puts it
    tail = probs.double().sum(dim=-1, keepdim=True) - (1 - top_p)
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1)  # sorted, most likely first
        mass = top.double().cumsum(dim=-1)
        if k == vocab or bool((mass[:, -1:] >= tail).all()):
            break
        k = min(4 * k, vocab)
    keep = mass - top.double() < tail  # the more likely tokens leave more than 1 - top_p
    keep[:, 0] = True
    return top.masked_fill(~keep, 0.0), ids


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row with probability proportional to `probs` (rows need not sum to 1): the
    inverse of the cumulative distribution at a uniform draw. The same distribution as
    `torch.multinomial(probs, 1)`, which draws an exponential per vocabulary entry (~1.5 ms a row)."""
    cdf = probs.cumsum(dim=-1)
    # u in (0, total]: the first index whose cdf reaches u never has probability 0
    u = (1 - torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=cdf.dtype)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1)


class _BufferLayer(DynamicLayer):
    """One layer's KV cache in a buffer with room for the whole batch (prompt + max_new_tokens):
    each step writes its keys and values in place instead of concatenating a new copy of the cache
    (which cost a third of a decode step at 16 rows)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.is_initialized = False

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
            b, h, _, d = key_states.shape
            self.key_buf = key_states.new_empty((b, h, self.capacity, d))
            self.value_buf = value_states.new_empty((b, h, self.capacity, d))
        end = self.length + key_states.shape[-2]
        self.key_buf[:, :, self.length : end] = key_states
        self.value_buf[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.key_buf[:, :, :end], self.value_buf[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self, *args) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep these rows (in this order, repeats allowed): expands prompts to n rows, drops finished rows."""
        if self.is_initialized:
            self.key_buf, self.value_buf = self.key_buf[indices], self.value_buf[indices]
            self.keys, self.values = self.key_buf[:, :, : self.length], self.value_buf[:, :, : self.length]


class HFSampler:
    name = "hf"

    def __init__(self, cfg: "CampaignConfig", model=None, tokenizer=None):
        """Load the model of `cfg.model` (or use a given model and tokenizer, e.g. in tests)."""
        model_cfg = cfg.model
        if model is None:
            if sampling_dtype(cfg.model.dtype, torch.device(resolve_device(cfg.model.device))) is not None:
                model_cfg = cfg.model.model_copy(update={"dtype": "bfloat16"})  # loaded as bf16: no fp32 copy in memory
            model, tokenizer = load_model(model_cfg)
        self.device = next(model.parameters()).device
        dtype = sampling_dtype(model_cfg.dtype, self.device)
        if dtype is not None:
            model = model.to(dtype)
        self.base = model  # never modified: adapters are wrapped around it and unloaded again
        self.model = model
        self.tokenizer = tokenizer
        self.style = cfg.model.prompt_style
        self.stops = stop_strings(self.style)
        self.batch_size = cfg.sampling.batch_size
        self.adapter: Path | None = None
        self.merged = self.device.type == "cpu"  # adapters merged into a copy of the base (see set_adapter)
        self._adapter_key: tuple | None = None
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = {i for i in eos + [tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        # transformers 5.2x renamed forward's `past_key_values` to `cache` (the old name goes in 5.40)
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.stats = {"sequences": 0, "tokens": 0, "seconds": 0.0}  # for throughput reporting
        self.tick = None  # see engine.sampler.Sampler.tick

    # ------------------------------------------------------------------ adapters
    def set_adapter(self, path: Path | None) -> None:
        """Sample from base + this LoRA adapter (None = the base). The previous adapter is removed
        completely first, so nothing of it leaks into the next round's samples."""
        path = Path(path) if path is not None else None
        key = adapter_key(path)
        if key == self._adapter_key:
            return  # already loaded, and not rewritten since (a retrained round is reloaded)
        if self.model is not self.base:
            if self.merged:
                self.model = self.base  # the merged copy goes; the base was never touched
            else:
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
            if self.merged:
                # On a CPU a decode step is dominated by per-operation overhead, and an unmerged LoRA
                # adds ~4 small operations to each of the ~200 adapted layers: +22% a step, measured
                # (docs/performance.md). So the adapter is merged, into a copy: the base stays exact
                # for the next adapter, and a given adapter always gives the same merged weights.
                self.model = PeftModel.from_pretrained(copy.deepcopy(self.base), str(path), is_trainable=False).merge_and_unload()
            else:  # on a GPU the copy would double memory for little gain: big matmuls dwarf the overhead
                self.model = PeftModel.from_pretrained(self.base, str(path), is_trainable=False)
            self.model.eval()
            self.adapter, self._adapter_key = path, key

    # ------------------------------------------------------------------ generation
    def generate(
        self, problems: Sequence[Problem], n: int, params: SamplingParams, seed: int, round: int = 0, start: int = 0
    ) -> list[list[Generation]]:
        """n generations per problem (see engine.sampler.Sampler). `round` and `start` are unused:
        the runner folds them into `seed`."""
        prompts = [encode_prompt(format_prompt(p, self.style, self.tokenizer), self.style, self.tokenizer)
                   for p in problems]
        jobs = [k for k in range(len(problems)) for _ in range(n)]  # each problem n times, in order
        generator = None
        if params.temperature > 0:  # one generator per call: the same call gives the same samples
            generator = torch.Generator(device=self.device).manual_seed(seed % (2**63))
        results: list[Generation] = []
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            outs = self._generate_batch([prompts[k] for k in batch], params, generator)
            results += [
                Generation(completion=output_to_completion(problems[k], out, self.style), output=out, n_tokens=m)
                for k, (out, m) in zip(batch, outs, strict=True)
            ]
        return [results[k * n : (k + 1) * n] for k in range(len(problems))]

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator | None
    ) -> list[tuple[str, int]]:
        """(output, n_tokens) per row: the text up to its stop, and the tokens generated through it.
        Rows with the same prompt are adjacent (a problem's samples), so each prompt is computed once."""
        started = time.time()
        distinct: list[list[int]] = []
        source: list[int] = []  # row -> index into `distinct`
        for ids in prompts:
            if not distinct or distinct[-1] != ids:
                distinct.append(ids)
            source.append(len(distinct) - 1)

        # prefill: the distinct prompts, left-padded so that every prompt ends where decoding starts
        width = max(len(ids) for ids in distinct)
        dev = self.device
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in distinct], device=dev)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in distinct], device=dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        padded = len({len(ids) for ids in distinct}) > 1
        n_layers = self.base.config.get_text_config().num_hidden_layers
        cache = Cache(layers=[_BufferLayer(width + params.max_new_tokens) for _ in range(n_layers)])
        out = self.model(input_ids=input_ids, attention_mask=mask if padded else None, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self.cache_arg: cache})
        logits = out.logits[:, -1].float()

        # each prompt's KV cache, logits, mask and position copied to its rows
        rows = torch.tensor(source, device=dev)
        cache.batch_select_indices(rows)
        logits, mask, position = logits[rows], mask[rows], positions[rows, -1]

        live = list(range(len(prompts)))  # batch row -> output row
        tokens: list[list[int]] = [[] for _ in prompts]
        next_tick = time.monotonic() + TICK_SECONDS
        for step in range(params.max_new_tokens):
            if self.tick is not None and time.monotonic() >= next_tick:
                self.tick()  # may raise Interrupted: this call's samples are dropped
                next_tick = time.monotonic() + TICK_SECONDS
            chosen = pick_tokens(logits, params, generator)
            keep = []
            for r, (row, token) in enumerate(zip(live, chosen.tolist())):
                tokens[row].append(token)
                if token not in self.eos_ids and not self._stopped(tokens[row]):
                    keep.append(r)
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) < len(live):  # drop the finished rows from the batch and its cache
                index = torch.tensor(keep, device=dev)
                cache.batch_select_indices(index)
                chosen, mask, position = chosen[index], mask[index], position[index]
                live = [live[r] for r in keep]
                padded = padded and not bool(mask.all())
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            position = position + 1
            out = self.model(input_ids=chosen[:, None], attention_mask=mask if padded else None,
                             position_ids=position[:, None], use_cache=True, **{self.cache_arg: cache})
            logits = out.logits[:, -1].float()

        results = []
        for new in tokens:
            output, _ = cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), self.style, self.stops)
            results.append((output, len(new)))
        self.stats["sequences"] += len(results)
        self.stats["tokens"] += sum(m for _, m in results)
        self.stats["seconds"] += time.time() - started
        return results

    def _stopped(self, new: list[int]) -> bool:
        """Whether the text of these generated tokens holds its stop. Decoding a row's whole text
        every step costs ~1% of a step (measured: 16 rows of 192 tokens, ~1 ms against 60-90 ms),
        so it is done plainly rather than incrementally, and gives exactly what `cut_at_stop`
        finds in the final text."""
        return cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), self.style, self.stops)[1]

    def close(self) -> None:
        self.model = self.base = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
