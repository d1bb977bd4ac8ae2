"""The engine's GPU path in one short run: the `hf` sampler and the LoRA trainer on CUDA in bf16.

    python bench/gpu_check.py            # on a machine with a CUDA GPU; nothing is downloaded

A random-weight model of the tests' tiny llama architecture, scaled up (`--hidden`, `--layers`),
samples HumanEval-style problems with `dtype = "auto"` (bf16 on CUDA), trains a LoRA for a few steps
in bf16 on its own samples, then samples again through the adapter. Prints dtypes, devices, losses,
tokens/s and peak GPU memory; exits 1 if any step fails or a loss is not finite.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--cpu", action="store_true", help="a dry run of the script on CPU (small sizes)")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from conftest import SMALL_PROBLEMS, build_tiny_model
    from engine.backends.hf import HFSampler
    from engine.config import CampaignConfig
    from engine.sampler import SamplingParams
    from engine.train import TrainExample, train_lora

    if args.cpu:
        torch.cuda.synchronize = lambda: None
        torch.cuda.max_memory_allocated = lambda: 0
    elif not torch.cuda.is_available():
        print("no CUDA GPU here")
        return 1
    print(f"torch {torch.__version__}, {'CPU (dry run)' if args.cpu else torch.cuda.get_device_name()}")
    tmp = Path(tempfile.mkdtemp())
    small = build_tiny_model(tmp / "tiny")
    # the tiny model's tokenizer with a bigger random llama: a realistic step cost on a GPU
    cfg_small = LlamaConfig.from_pretrained(small)
    big = LlamaConfig(**{**cfg_small.to_dict(), "hidden_size": args.hidden, "intermediate_size": 4 * args.hidden,
                         "num_hidden_layers": args.layers, "num_attention_heads": args.hidden // 64,
                         "num_key_value_heads": max(1, args.hidden // 256), "head_dim": 64})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(big).save_pretrained(small)
    cfg = CampaignConfig.model_validate({
        "name": "gpu", "model": {"spec": str(small), "backend": "hf", "prompt_style": "chat"},
        "sampling": {"n": args.n, "batch_size": 64, "max_new_tokens": 96},
        "train": {"epochs": 2, "batch_size": 8, "lora_r": 16, "lora_alpha": 32, "max_seq_len": 384},
    })
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=96)
    ok = True

    sampler = HFSampler(cfg)
    dtype, device = next(sampler.base.parameters()).dtype, sampler.device
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    gens = sampler.generate(SMALL_PROBLEMS, args.n, params, seed=1)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    tokens = sum(g.n_tokens for per in gens for g in per)
    print(f"sample (base): {dtype} on {device}, {len(SMALL_PROBLEMS)} problems x {args.n}: {tokens} tokens in {secs:.2f} s "
          f"= {tokens / secs:.0f} tok/s")

    examples = [TrainExample(problem=p, output=g.output) for p, per in zip(SMALL_PROBLEMS, gens) for g in per[:4]]
    t0 = time.perf_counter()
    result = train_lora(cfg, examples, tmp / "adapter", None, seed=2)
    secs = time.perf_counter() - t0
    print(f"train: {result.examples} examples, {result.steps} steps, losses {[round(x, 3) for x in result.losses]}, "
          f"{result.tokens} tokens in {result.seconds:.2f} s ({result.tokens / result.seconds:.0f} tok/s with loading), "
          f"padding {1 - result.tokens / max(1, result.padded_tokens):.1%}")
    if not result.losses or not all(math.isfinite(x) for x in result.losses):
        print("FAIL: no finite losses")
        ok = False

    sampler.set_adapter(result.adapter_dir)
    gens2 = sampler.generate(SMALL_PROBLEMS, args.n, params, seed=1)
    changed = sum(a.output != b.output for pa, pb in zip(gens, gens2) for a, b in zip(pa, pb))
    print(f"sample (adapter): {changed}/{len(SMALL_PROBLEMS) * args.n} samples differ from the base model's (same seed)")
    sampler.set_adapter(None)
    gens3 = sampler.generate(SMALL_PROBLEMS, args.n, params, seed=1)
    same = all(a.output == b.output for pa, pb in zip(gens, gens3) for a, b in zip(pa, pb))
    print(f"sample (base again): identical to the first base samples: {same}")  # a fact, not a failure on GPUs
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
