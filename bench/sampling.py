"""Sampling throughput of the `hf` sampler against plain transformers `generate`, in one run.

    python bench/sampling.py                      # the full run: 32 prompts x n=8 (long on 2 cores)
    python bench/sampling.py --prompts 8          # a quick run (a few minutes)
    python bench/sampling.py --variants baseline,hf,hf-fp32,hf@e5b3389 --prompts 8

Problems: the HumanEval problems with the shortest canonical solutions (`select(order="shortest")`),
sampled with the demo campaign's settings (campaigns/demo.toml: the default model, chat prompts,
T = 0.8, top_p = 0.95, max_new_tokens = 192, batch_size = 16), n samples each. Variants:

- `baseline`: transformers `generate`, one prompt at a time with `num_return_sequences = n`, no stop
  strings (the model's default dtype, fp32 on CPU); its texts are cut at the stop afterwards for
  verification, and its useful tokens are those up to the stop;
- `hf`: the engine's `hf` sampler driven as the runner drives it (`plan_units`: a few problems x n
  per `generate` call, problems sorted by prompt length, seeds from `derive_seed`);
- `hf-fp32`: the same with `model.dtype = "float32"` (where `auto` picks bf16);
- `hf@REV`: the `hf` sampler of git revision REV (engine/backends/hf.py at REV), for before/after;
- `vllm`: the engine's `vllm` sampler (a CUDA GPU with vllm installed). On a GPU, compare it with
  `hf` (`--backend vllm` = `--variants hf,vllm`); `--random-model` samples from a random-weight
  model of Qwen2.5-Coder-1.5B's architecture where no real weights can be fetched (throughput only:
  its texts are noise, so it runs to max_new_tokens and pass rates mean nothing).

Each variant lives in its own worker process (its own model, its own peak RSS). The parent hands
out the work unit by unit, one worker busy at a time, rotating the variants' order from unit to
unit, so that the load of a shared machine falls on all of them alike. Then every sample is
verified (engine.verify.Verifier) and the figures are printed with the ratios against `baseline`,
and the CPU's decode limit (weight bytes per step against measured memory bandwidth).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEMO = dict(spec="smollm2-135m-instruct", style="chat", temperature=0.8, top_p=0.95, max_new_tokens=192,
            batch_size=16, seed=1234)


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- workers


def make_cfg(args, dtype: str = "auto"):
    from engine.config import CampaignConfig

    return CampaignConfig.model_validate({
        "name": "bench", "seed": DEMO["seed"],
        "model": {"spec": args["spec"], "prompt_style": DEMO["style"], "dtype": dtype, "threads": args["threads"]},
        "sampling": {"n": args["n"], "temperature": DEMO["temperature"], "top_p": DEMO["top_p"],
                     "max_new_tokens": args["max_new_tokens"], "batch_size": args["batch_size"]},
    })


def load_git_module(rev: str) -> types.ModuleType:
    """engine/backends/hf.py as it was at git revision `rev`, as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:engine/backends/hf.py"],
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(f"hf_at_{rev}")
    module.__file__ = f"<engine/backends/hf.py at {rev}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def useful_tokens(tokenizer, new: list[int], eos_ids: set[int]) -> int:
    """Tokens up to and including the stop (EOS or the style's stop), as the engine counts them."""
    from engine.prompts import cut_at_stop

    for i, t in enumerate(new):
        if t in eos_ids:
            return i + 1
    stopped = lambda k: cut_at_stop(tokenizer.decode(new[:k], skip_special_tokens=True), DEMO["style"])[1]
    if not stopped(len(new)):
        return len(new)
    lo, hi = 1, len(new)  # the stop holds at hi, and once it holds it holds for every longer text
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if stopped(mid) else (mid + 1, hi)
    return lo


class Baseline:
    """transformers `generate`, one prompt at a time, num_return_sequences = n, no stop strings."""

    def __init__(self, args):
        import torch
        from transformers import GenerationConfig

        from engine.models import load_model

        self.torch = torch
        self.model, self.tok = load_model(make_cfg(args).model)
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = {i for i in eos + [self.tok.eos_token_id] if i is not None}
        self.gen_cfg = GenerationConfig(
            do_sample=True, temperature=DEMO["temperature"], top_p=DEMO["top_p"], top_k=0,
            max_new_tokens=args["max_new_tokens"], eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tok.pad_token_id, use_cache=True)
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")

    def run(self, unit, seed: int) -> list[list[dict]]:
        from engine.prompts import cut_at_stop, encode_prompt, format_prompt, output_to_completion
        from engine.runner import derive_seed

        torch, rows = self.torch, []
        for p in unit.problems:
            ids = encode_prompt(format_prompt(p, DEMO["style"], self.tok), DEMO["style"], self.tok)
            torch.manual_seed(derive_seed(seed, p.task_id))
            with torch.inference_mode():
                out = self.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                          generation_config=self.gen_cfg, num_return_sequences=unit.count)
            per = []
            for new in out[:, len(ids):].tolist():  # rows that ended early are padded after their EOS
                text = self.tok.decode(new, skip_special_tokens=True)
                output, _ = cut_at_stop(text, DEMO["style"])
                per.append(dict(task_id=p.task_id, output=output, completion=output_to_completion(p, output, DEMO["style"]),
                                useful=useful_tokens(self.tok, new, self.eos_ids), computed=out.shape[1] - len(ids)))
            rows.append(per)
        return rows


class Engine:
    """The engine's hf sampler (this tree's, or the one of a git revision), driven like the runner."""

    def __init__(self, args, dtype: str = "auto", rev: str | None = None):
        import torch

        self.max_new_tokens = args["max_new_tokens"]
        module = load_git_module(rev) if rev else __import__("engine.backends.hf", fromlist=["HFSampler"])
        self.sampler = module.HFSampler(make_cfg(args, dtype))
        self.dtype = str(next(self.sampler.base.parameters()).dtype).removeprefix("torch.")
        self.torch = torch

    def run(self, unit, seed: int) -> list[list[dict]]:
        from engine.sampler import SamplingParams

        params = SamplingParams(DEMO["temperature"], DEMO["top_p"], self.max_new_tokens)
        gens = self.sampler.generate(list(unit.problems), unit.count, params, seed, round=0, start=unit.start)
        return [[dict(task_id=p.task_id, output=g.output, completion=g.completion, useful=g.n_tokens, computed=g.n_tokens)
                 for g in per] for p, per in zip(unit.problems, gens)]


class VLLMRun(Engine):
    """The engine's vllm sampler, driven like the runner (one call per unit)."""

    def __init__(self, args):
        from engine.backends.vllm import VLLMSampler

        cfg = make_cfg(args)
        self.max_new_tokens = args["max_new_tokens"]
        self.sampler = VLLMSampler(cfg)
        self.dtype = "auto"
        folder = Path(args["spec"])
        self.weight_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0


def random_model(folder: Path) -> str:
    """A random-weight Qwen2 model with Qwen2.5-Coder-1.5B's shape and the default model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from engine.config import ModelConfig
    from engine.models import load_tokenizer

    tok = load_tokenizer(ModelConfig(spec=DEMO["spec"]))
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def step_times(model, torch, rows: int, context: int = 250, steps: int = 6) -> float:
    """Best seconds of one decode step of `rows` rows after `context` tokens (forward only)."""
    with torch.inference_mode():
        out = model(input_ids=torch.randint(100, 1000, (1, context)), use_cache=True, logits_to_keep=1)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        cache.batch_repeat_interleave(rows)
        x = torch.randint(100, 1000, (rows, 1))
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            model(input_ids=x, cache=cache, use_cache=True)
            times.append(time.perf_counter() - t0)
    return min(times)


def parse_variant(variant: str) -> tuple[str, dict]:
    """`hf:bs32:t1` -> ("hf", {"batch_size": 32, "threads": 1})."""
    name, *opts = variant.split(":")
    keys = {"bs": "batch_size", "t": "threads"}
    options = {}
    for opt in opts:
        key = opt.rstrip("0123456789")
        if key not in keys or key == opt:
            raise SystemExit(f"unknown variant option {opt!r} in {variant!r}; use bsN (call size) or tN (threads)")
        options[keys[key]] = int(opt[len(key):])
    return name, options


def worker(variant: str, args: dict, conn) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    name, options = parse_variant(variant)
    args = dict(args, **options)
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    t0 = time.perf_counter()
    if name == "baseline":
        runner = Baseline(args)
        model = runner.model
    elif name == "vllm":
        runner, model = VLLMRun(args), None
    else:
        dtype = "float32" if name == "hf-fp32" else "auto"
        rev = name.partition("@")[2] or None
        runner = Engine(args, dtype, rev)
        model = runner.sampler.base
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) if model is not None else runner.weight_bytes
    load_peak = rss_mb("VmHWM")
    try:  # restart the peak from here: the peak while sampling, apart from loading's
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    conn.send(dict(load_s=time.perf_counter() - t0, rss_loaded=rss_mb(), rss_load_peak=load_peak, dtype=runner.dtype,
                   weight_bytes=weight_bytes, threads=torch.get_num_threads()))
    while True:
        msg = conn.recv()
        if msg is None:
            break
        if msg[0] == "steps":
            conn.send({rows: step_times(model, torch, rows) for rows in msg[1]} if model is not None else {})
            continue
        _, units = msg
        t0, c0 = time.perf_counter(), time.process_time()
        rows = [row for unit, seed in units for row in runner.run(unit, seed)]
        conn.send((time.perf_counter() - t0, time.process_time() - c0, rows))
    conn.send(dict(rss_peak=rss_mb("VmHWM")))
    conn.close()


# ---------------------------------------------------------------------------- the machine


def memory_bandwidth(threads: int) -> dict:
    """GB/s of reading a 1 GiB fp32 tensor (a sum) and of copying 512 MiB, best of 5."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    big = torch.ones(256 * 1024 * 1024)
    half = torch.ones(128 * 1024 * 1024)
    dst = torch.empty_like(half)
    best_read = best_copy = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        big.sum()
        best_read = min(best_read, time.perf_counter() - t0)
        t0 = time.perf_counter()
        dst.copy_(half)
        best_copy = min(best_copy, time.perf_counter() - t0)
    return dict(read=big.numel() * 4 / best_read / 1e9, copy=2 * half.numel() * 4 / best_copy / 1e9)


# ---------------------------------------------------------------------------- one idea at a time


def best_of(reps: int, jobs: dict) -> dict:
    """{name: best seconds} of calling each job `reps` times, the jobs interleaved (the order rotates)."""
    names, best = list(jobs), {name: float("inf") for name in jobs}
    for r in range(reps):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            jobs[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def components(args) -> None:
    """The ideas one at a time, each on a fixed workload (the same tokens for both sides), best of 3
    interleaved: dtype, KV cache, prompt reuse, sampling, batch compaction, threads, merged LoRA."""
    import warnings

    warnings.filterwarnings("ignore")
    import copy

    import torch
    from transformers.cache_utils import Cache, DynamicLayer
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    from engine.backends.hf import _BufferLayer, pick_tokens
    from engine.models import load_model
    from engine.problems import load_problems, select
    from engine.prompts import encode_prompt, format_prompt
    from engine.sampler import SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = make_cfg(dict(spec=args.spec, n=args.n, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        threads=args.threads), "float32")
    fp32, tok = load_model(cfg.model)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    layers = fp32.config.num_hidden_layers
    rows, ctx, steps = args.batch_size, 250, 24
    print(f"fixed workloads, best of 3 interleaved, {torch.get_num_threads()} threads; a decode step after {ctx} tokens")

    def decode(model, kind: str, b: int, schedule: list[int] | None = None, n_steps: int = steps):
        """n_steps decode steps of b rows (or rows leaving at the steps of `schedule`)."""
        cache = Cache(layers=[_BufferLayer(ctx + n_steps + 1) if kind == "buffer" else DynamicLayer() for _ in range(layers)])
        with torch.inference_mode():
            model(input_ids=torch.randint(100, 1000, (1, ctx)), cache=cache, use_cache=True, logits_to_keep=1)
            cache.batch_select_indices(torch.zeros(b, dtype=torch.long))
            x, pos = torch.randint(100, 1000, (b, 1)), torch.full((b, 1), ctx)
            for step in range(n_steps):
                if schedule is not None:
                    keep = [r for r in range(x.shape[0]) if schedule[r] > step]
                    if len(keep) < x.shape[0]:
                        index = torch.tensor(keep)
                        cache.batch_select_indices(index)
                        x, pos, schedule = x[index], pos[index], [schedule[r] for r in keep]
                model(input_ids=x, position_ids=pos + step, cache=cache, use_cache=True)

    line = lambda what, t: print(f"  {what:<58}" + "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in t.items()), flush=True)
    for b in (1, 4, rows):
        t = best_of(3, {"fp32": lambda: decode(fp32, "dynamic", b), "bf16": lambda: decode(bf16, "dynamic", b),
                        "bf16+buffer": lambda: decode(bf16, "buffer", b)})
        line(f"decode step, {b} rows (transformers' DynamicCache / ours):", {k: v / steps for k, v in t.items()})

    problems = select(load_problems("humaneval"), order="shortest", limit=2)
    prompts = [encode_prompt(format_prompt(p, DEMO["style"], tok), DEMO["style"], tok) for p in problems]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()

    def prefill(model, repeat: int):
        with torch.inference_mode():
            model(input_ids=ids.repeat_interleave(repeat, 0), attention_mask=mask.repeat_interleave(repeat, 0),
                  use_cache=True, logits_to_keep=1)

    for name, model in (("fp32", fp32), ("bf16", bf16)):
        line(f"prefill of 2 prompts x {args.n} ({width} tokens), {name}:",
             best_of(3, {f"{2 * args.n} rows": lambda: prefill(model, args.n), "2 rows": lambda: prefill(model, 1)}))

    # real next-token logits: the model reading a reference solution after its prompt (peaked and flat rows)
    text = encode_prompt(format_prompt(problems[0], DEMO["style"], tok), DEMO["style"], tok)
    text += tok("```python\n" + problems[0].prompt + problems[0].canonical + "```", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = fp32(input_ids=torch.tensor([text])).logits[0, -rows:].float()
    params = SamplingParams(DEMO["temperature"], DEMO["top_p"], 1)

    def transformers_pick():
        scores = TopPLogitsWarper(DEMO["top_p"])(None, TemperatureLogitsWarper(DEMO["temperature"])(None, logits))
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)

    gen = torch.Generator().manual_seed(0)
    line(f"sampling {rows} rows (T {DEMO['temperature']}, top_p {DEMO['top_p']}):",
         best_of(3, {"sort+multinomial": transformers_pick, "ours": lambda: pick_tokens(logits, params, gen)}))

    # rows finishing as the demo's do (n_tokens of a real unit: HumanEval/53 and /23, seed 1234)
    schedule = [25, 32, 35, 42, 44, 45, 47, 64, 65, 67, 78, 112, 140, 170, 192, 192][:rows]
    schedule += [192] * (rows - len(schedule))
    t = best_of(3, {"all rows to the end": lambda: decode(bf16, "buffer", rows, [max(schedule)] * rows, max(schedule)),
                    "finished rows dropped": lambda: decode(bf16, "buffer", rows, schedule, max(schedule))})
    line(f"decode of {rows} rows finishing at 25..192 tokens, bf16:", t)
    if torch.get_num_threads() > 1:
        threads = torch.get_num_threads()

        def with_threads(k):
            torch.set_num_threads(k)
            try:
                decode(bf16, "buffer", rows)
            finally:
                torch.set_num_threads(threads)

        t = best_of(3, {f"{k} threads": (lambda k=k: with_threads(k)) for k in (1, threads)})
        line(f"decode step, {rows} rows, bf16 + buffer:", {k: v / steps for k, v in t.items()})

    # rounds >= 1 sample through the round's LoRA (the demo's: r 16 on every linear layer)
    import tempfile

    from peft import LoraConfig, PeftModel, get_peft_model

    with tempfile.TemporaryDirectory() as adapter:
        lora = get_peft_model(copy.deepcopy(fp32), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                              task_type="CAUSAL_LM"))
        for name, p in lora.named_parameters():
            if "lora_B" in name:  # a trained adapter is not a no-op
                torch.nn.init.normal_(p, std=0.01)
        lora.save_pretrained(adapter)
        del lora
        unmerged = PeftModel.from_pretrained(copy.deepcopy(bf16), adapter).eval()
        merged = PeftModel.from_pretrained(copy.deepcopy(bf16), adapter).merge_and_unload().eval()
        t = best_of(3, {"unmerged": lambda: decode(unmerged, "buffer", rows), "merged": lambda: decode(merged, "buffer", rows),
                        "no adapter": lambda: decode(bf16, "buffer", rows)})
        line(f"decode step, {rows} rows, bf16 + buffer, with a LoRA r 16:", {k: v / steps for k, v in t.items()})


def check_bf16(args) -> None:
    """How far bf16 moves the sampling distribution: prompt + an fp32 sample of each problem through
    both models, then per generated position the total variation distance between the two nucleus
    distributions (T, top_p as sampled) and whether the most likely token agrees."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    from engine.backends.hf import HFSampler, nucleus
    from engine.problems import load_problems, select
    from engine.prompts import encode_prompt, format_prompt
    from engine.sampler import SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = make_cfg(dict(spec=args.spec, n=args.n, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        threads=args.threads), "float32")
    sampler = HFSampler(cfg)
    fp32, tok = sampler.base, sampler.tokenizer
    bf16 = __import__("copy").deepcopy(fp32).to(torch.bfloat16)
    problems = select(load_problems("humaneval"), order="shortest", limit=args.prompts)
    params = SamplingParams(DEMO["temperature"], DEMO["top_p"], args.max_new_tokens)
    tvs, agree, total = [], 0, 0
    for i, p in enumerate(problems):
        g = sampler.generate([p], 1, params, seed=i)[0][0]
        prompt = encode_prompt(format_prompt(p, DEMO["style"], tok), DEMO["style"], tok)
        new = tok(g.output, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + new])
        dist = []
        with torch.inference_mode():
            for model in (fp32, bf16):
                logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
                probs, top = nucleus(torch.softmax(logits / DEMO["temperature"], dim=-1), DEMO["top_p"])
                full = torch.zeros_like(logits).scatter(1, top, probs)
                dist.append((full / full.sum(-1, keepdim=True), logits.argmax(-1)))
        tvs += (0.5 * (dist[0][0] - dist[1][0]).abs().sum(-1)).tolist()
        agree += int((dist[0][1] == dist[1][1]).sum())
        total += len(new)
    tvs.sort()
    print(f"bf16 against fp32 on {len(problems)} fp32 samples ({total} positions): total variation of the sampling "
          f"distribution mean {statistics.mean(tvs):.4f}, median {statistics.median(tvs):.4f}, "
          f"95th percentile {tvs[int(0.95 * len(tvs))]:.4f}; the most likely token agrees at {100 * agree / total:.1f}%")


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32, help="how many problems (shortest canonical solutions first)")
    ap.add_argument("--n", type=int, default=8, help="samples per problem")
    ap.add_argument("--batch-size", type=int, default=DEMO["batch_size"], help="the runner's sequences per generate call")
    ap.add_argument("--max-new-tokens", type=int, default=DEMO["max_new_tokens"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each worker (0 = torch's default)")
    ap.add_argument("--variants", default="baseline,hf",
                    help="comma-separated: baseline, hf, hf-fp32, hf@REV, each with options :bsN (calls of N sequences) "
                         "and :tN (N torch threads), e.g. hf:t1")
    ap.add_argument("--spec", default=DEMO["spec"], help="model spec (default: the demo's)")
    ap.add_argument("--backend", choices=["hf", "vllm"], help="vllm: --variants hf,vllm (on a GPU)")
    ap.add_argument("--random-model", action="store_true", help="a random-weight Qwen2.5-Coder-1.5B-shaped model (throughput only)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--components", action="store_true", help="only measure each idea alone on fixed workloads")
    ap.add_argument("--check-bf16", action="store_true", help="only measure how far bf16 moves the sampling distribution")
    args = ap.parse_args()
    if args.components:
        components(args)
        return 0
    if args.check_bf16:
        check_bf16(args)
        return 0
    if args.backend == "vllm":
        args.variants = "hf,vllm"
    if args.random_model:
        import tempfile

        args.spec = random_model(Path(tempfile.mkdtemp(prefix="random-qwen2-")))
    variants = args.variants.split(",")
    if "baseline" in variants:
        variants.remove("baseline")
        variants.insert(0, "baseline")

    import torch

    from engine.problems import load_problems, select
    from engine.runner import derive_seed, plan_units
    from engine.verify import Verifier

    problems = select(load_problems("humaneval"), order="shortest", limit=args.prompts)
    call_size = lambda v: parse_variant(v)[1].get("batch_size", args.batch_size)
    # groups of problems handed to every variant in turn: the units of the largest call size
    groups = plan_units(problems, "train", args.n, max(call_size(v) for v in variants))
    wargs = dict(spec=args.spec, n=args.n, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                 threads=args.threads)
    print(f"{len(problems)} HumanEval problems (shortest solutions) x n={args.n}, runner units of <= "
          f"{args.batch_size} sequences; chat, T={DEMO['temperature']}, top_p={DEMO['top_p']}, "
          f"max_new_tokens={args.max_new_tokens}; torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    bw = memory_bandwidth(args.threads)
    print(f"memory bandwidth: read {bw['read']:.1f} GB/s, copy {bw['copy']:.1f} GB/s (read + write)", flush=True)

    ctx = mp.get_context("spawn")
    workers = {}
    for v in variants:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(v, wargs, child), daemon=True)
        proc.start()
        workers[v] = (proc, parent)
        info = parent.recv()  # one model loading at a time
        workers[v] = (proc, parent, info)
        print(f"  {v}: loaded in {info['load_s']:.1f} s, {info['dtype']}, {info['weight_bytes'] / 1e6:.0f} MB of weights, "
              f"RSS {info['rss_loaded']:.0f} MB (peak while loading {info['rss_load_peak']:.0f} MB), "
              f"{info['threads']} threads", flush=True)

    seconds = {v: 0.0 for v in variants}
    cpu_seconds = {v: 0.0 for v in variants}  # CPU time of the worker's threads: less sensitive to other load
    samples: dict[str, list[dict]] = {v: [] for v in variants}
    started = time.perf_counter()
    for i, group in enumerate(groups):
        order = variants[i % len(variants):] + variants[: i % len(variants)]
        line = []
        for v in order:
            _, conn, _ = workers[v]
            size = call_size(v)  # the variant's runner units within this group of problems
            sub = plan_units(list(group.problems), "train", args.n, size) if group.count == args.n else [group]
            conn.send(("units", [(u, derive_seed(DEMO["seed"], 0, u.purpose, ",".join(p.task_id for p in u.problems), u.start))
                                 for u in sub]))
            elapsed, cpu, rows = conn.recv()
            seconds[v] += elapsed
            cpu_seconds[v] += cpu
            samples[v] += [r for per in rows for r in per]
            line.append(f"{v} {elapsed:5.1f} s")
        print(f"  {i + 1}/{len(groups)} ({', '.join(p.task_id for p in group.problems)}): {', '.join(line)}", flush=True)
    print(f"sampling took {time.perf_counter() - started:.0f} s in all", flush=True)

    # decode step times at 1 and 16 rows (forward only): how close each model gets to the limit
    step_rows = (1, args.batch_size)  # the same for every variant
    steps = {v: {rows: float("inf") for rows in step_rows} for v in variants}
    for _ in range(3):  # interleaved, the best of 3
        for v in variants:
            workers[v][1].send(("steps", step_rows))
            for rows, s in workers[v][1].recv().items():  # none from vllm: it owns its model
                steps[v][rows] = min(steps[v][rows], s)
    for v in variants:
        proc, conn, info = workers[v]
        conn.send(None)
        info.update(conn.recv())
        proc.join()

    print("verifying ...", flush=True)
    by_id = {p.task_id: p for p in problems}
    with Verifier(timeout=3.0) as verifier:
        for v in variants:
            verdicts = verifier.verify([(by_id[s["task_id"]], s["completion"]) for s in samples[v]])
            for s, vd in zip(samples[v], verdicts):
                s["passed"] = vd.passed

    report = {"bandwidth_gb_s": bw, "variants": {}}
    print()
    print(f"{'variant':<14}{'dtype':>9}{'seconds':>9}{'CPU s':>8}{'samples/s':>11}{'useful tok/s':>14}{'computed tok/s':>16}"
          f"{'tok/sample':>12}{'pass@1':>9}{'solved':>8}{'peak RSS':>10}{'x samples/s':>13}{'x CPU s':>9}")
    base = variants[0]
    for v in variants:
        rows, secs, info = samples[v], seconds[v], workers[v][2]
        useful, computed = sum(r["useful"] for r in rows), sum(r["computed"] for r in rows)
        passed = sum(r["passed"] for r in rows)
        solved = len({r["task_id"] for r in rows if r["passed"]})
        figures = dict(dtype=info["dtype"], seconds=secs, samples=len(rows), samples_per_s=len(rows) / secs,
                       useful_tok_s=useful / secs, computed_tok_s=computed / secs, useful_per_sample=useful / len(rows),
                       pass_at_1=passed / len(rows), solved=solved, rss_loaded_mb=info["rss_loaded"],
                       rss_peak_mb=info["rss_peak"], weight_bytes=info["weight_bytes"],
                       step_ms={str(k): s * 1e3 for k, s in steps[v].items()})
        figures["ratio"] = seconds[base] / secs
        figures["cpu_seconds"] = cpu_seconds[v]
        figures["cpu_ratio"] = cpu_seconds[base] / cpu_seconds[v]
        report["variants"][v] = figures
        print(f"{v:<14}{figures['dtype']:>9}{secs:9.0f}{cpu_seconds[v]:8.0f}{figures['samples_per_s']:11.3f}{figures['useful_tok_s']:14.1f}"
              f"{figures['computed_tok_s']:16.1f}{figures['useful_per_sample']:12.1f}{100 * figures['pass_at_1']:8.1f}%"
              f"{solved:>5}/{len(problems):<3}{info['rss_peak']:8.0f} MB{figures['ratio']:12.2f}x{figures['cpu_ratio']:8.2f}x")
    print("peak RSS: each worker's peak while sampling, its model included (loading's peak is printed above); "
          "x samples/s, x CPU s: against the first variant")

    # pass rates: the per-problem difference to the first variant, with a 95% interval over problems
    print()
    for v in variants[1:]:
        diffs = []
        for p in problems:
            a = [r["passed"] for r in samples[base] if r["task_id"] == p.task_id]
            b = [r["passed"] for r in samples[v] if r["task_id"] == p.task_id]
            diffs.append(sum(b) / len(b) - sum(a) / len(a))
        mean = statistics.mean(diffs)
        half = 1.96 * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
        report["variants"][v]["pass_diff"] = dict(mean=mean, ci95=half)
        print(f"pass@1 {v} - {base}: {100 * mean:+.1f} points (95% interval over problems: +-{100 * half:.1f})")

    # the decode limit: every step reads all weights once; a step of B rows gives B tokens
    print()
    b = args.batch_size
    for v in variants:
        f = report["variants"][v]
        weight_s = f["weight_bytes"] / (bw["read"] * 1e9)
        limit = b / weight_s
        step_b = steps[v][b]
        f["decode_limit_tok_s"] = limit
        if not f["weight_bytes"] or step_b == float("inf"):
            print(f"{v}: end to end {f['computed_tok_s']:.0f} tok/s (no step times: the backend owns its model)")
            continue
        print(f"{v}: {f['weight_bytes'] / 1e6:.0f} MB of {f['dtype']} weights per step -> at {bw['read']:.1f} GB/s "
              f"{weight_s * 1e3:.0f} ms/step, decode limit {1 / weight_s:.0f} tok/s at 1 row, {limit:.0f} tok/s at {b} rows; "
              f"measured step: {steps[v][1] * 1e3:.0f} ms at 1 row, {step_b * 1e3:.0f} ms at {b} rows "
              f"({b / step_b:.0f} tok/s = {100 * weight_s / step_b:.0f}% of the limit); "
              f"end to end {f['computed_tok_s']:.0f} tok/s = {100 * f['computed_tok_s'] / limit:.0f}% of the {b}-row limit")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
