"""The hf sampler's own decode loop: transformers' sampling semantics, prompt reuse, a batch that
shrinks as rows finish, and the same tokens as transformers' `generate` when greedy."""

from __future__ import annotations

import pytest
import torch

from engine.backends import hf
from engine.config import CampaignConfig
from engine.prompts import encode_prompt, format_prompt
from engine.sampler import SamplingParams, make_sampler


def transformers_nucleus(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The probabilities transformers samples from: its own warpers, then softmax."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    scores = TemperatureLogitsWarper(temperature)(None, logits)
    scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("scale", [0.3, 3.0, 12.0])  # flat, ordinary, nearly one-hot
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 0.999])
@pytest.mark.parametrize("temperature", [0.5, 0.8, 1.3])
def test_nucleus_keeps_what_transformers_keeps(scale, top_p, temperature):
    gen = torch.Generator().manual_seed(int(scale * 100 + top_p * 1000 + temperature * 10))
    logits = torch.randn(6, 5000, generator=gen) * scale
    logits[:3, :20] += 2 * scale  # some rows with a clear head, some without
    expected = transformers_nucleus(logits, temperature, top_p)
    probs, ids = hf.nucleus(torch.softmax(logits / temperature, dim=-1), top_p)
    ours = torch.zeros_like(expected).scatter(1, ids, probs)
    ours = ours / ours.sum(dim=-1, keepdim=True)
    assert torch.equal(ours > 0, expected > 0)  # the same tokens
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-7)  # with the same probabilities


def test_draw_follows_the_probabilities():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3, 0.0], [0.0, 0.0, 2.0, 0.0, 2.0]])  # rows need not sum to 1
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([hf.draw(probs, gen) for _ in range(20000)])
    for row in range(2):
        freq = torch.bincount(draws[:, row], minlength=5).double() / len(draws)
        target = probs[row].double() / probs[row].sum()
        assert torch.all(freq[target == 0] == 0)  # never a token outside the nucleus
        assert torch.allclose(freq, target, atol=0.015)


def test_pick_tokens_is_greedy_at_temperature_0():
    logits = torch.randn(4, 100)
    assert torch.equal(hf.pick_tokens(logits, SamplingParams(0.0, 0.95, 8), None), logits.argmax(dim=-1))


def test_auto_dtype_is_bf16_only_on_a_cpu_with_bf16_units(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: True)
    assert hf.sampling_dtype("auto", cpu) is torch.bfloat16
    assert hf.sampling_dtype("float32", cpu) is None
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    assert hf.sampling_dtype("auto", cpu) is None


# ---------------------------------------------------------------------------- the decode loop


def make(tiny_model_dir, dtype="float32", batch_size=16, style="completion"):
    cfg = CampaignConfig.model_validate({
        "name": "t", "sampling": {"batch_size": batch_size},
        "model": {"spec": str(tiny_model_dir), "backend": "hf", "prompt_style": style, "device": "cpu", "dtype": dtype},
    })
    return make_sampler(cfg)


@pytest.fixture(scope="module")
def fp32_sampler(tiny_model_dir):
    sampler = make(tiny_model_dir)
    yield sampler
    sampler.close()


def record_batches(monkeypatch, sampler) -> list[int]:
    """The batch size of every forward the sampler makes from now on."""
    sizes: list[int] = []
    real = sampler.model.forward

    def forward(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(sampler.model, "forward", forward)
    return sizes


def test_greedy_equals_transformers_generate(fp32_sampler, small_problems):
    """Prompts of different lengths in one batch (left padding), each problem's n rows from one
    prefill: the same tokens as transformers' `generate` on each prompt alone."""
    sampler, params = fp32_sampler, SamplingParams(0.0, 1.0, 24)
    sampler.stops = []
    try:
        ours = sampler.generate(small_problems, 2, params, seed=0)
    finally:
        sampler.stops = hf.stop_strings(sampler.style)
    tok = sampler.tokenizer
    for problem, gens in zip(small_problems, ours):
        ids = encode_prompt(format_prompt(problem, "completion", tok), "completion", tok)
        with torch.inference_mode():
            out = sampler.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                         do_sample=False, max_new_tokens=params.max_new_tokens, eos_token_id=sorted(sampler.eos_ids),
                                         pad_token_id=sampler.pad_id)
        new = out[0, len(ids):].tolist()
        expected = tok.decode(new, skip_special_tokens=True)
        assert [g.output for g in gens] == [expected, expected]
        assert [g.n_tokens for g in gens] == [len(new), len(new)]


def test_prompts_are_computed_once_and_the_batch_shrinks(fp32_sampler, small_problems, monkeypatch):
    sampler = fp32_sampler
    sizes = record_batches(monkeypatch, sampler)
    sampler.stops = ["q"]  # gibberish hits it after ~10 to 60 tokens: rows finish at different steps
    try:
        gens = sampler.generate(small_problems, 4, SamplingParams(0.8, 0.95, 64), seed=3)
    finally:
        sampler.stops = hf.stop_strings(sampler.style)
    lengths = sorted(g.n_tokens for row in gens for g in row)
    assert sizes[0] == len(small_problems)  # the prefill: one row per distinct prompt, not per sample
    assert sizes[1] == len(small_problems) * 4 - lengths.count(1)  # then every row still running
    assert sizes[1:] == sorted(sizes[1:], reverse=True) and sizes[-1] < sizes[1]  # finished rows leave
    assert len(sizes) - 1 == max(lengths) - 1  # a step per token of the longest row, the last token needs none
    # a row's tokens are all of its steps: the batch at step s holds the rows longer than s
    assert sizes[1:] == [sum(n > s for n in lengths) for s in range(1, max(lengths))]


def test_batches_of_a_large_call_are_cut_the_same_way(tiny_model_dir, small_problems):
    """A call with more sequences than batch_size runs in consecutive batches, deterministically."""
    sampler = make(tiny_model_dir, batch_size=4)
    params = SamplingParams(0.8, 0.95, 12)
    a = sampler.generate(small_problems, 3, params, seed=5)
    b = sampler.generate(small_problems, 3, params, seed=5)
    assert a == b and [len(r) for r in a] == [3, 3, 3]
    sampler.close()


def test_bf16_sampling_is_deterministic(tiny_model_dir, small_problems):
    sampler = make(tiny_model_dir, dtype="bfloat16", style="chat")
    assert next(sampler.base.parameters()).dtype is torch.bfloat16
    params = SamplingParams(0.8, 0.95, 16)
    a = sampler.generate(small_problems, 3, params, seed=7)
    sampler.generate(small_problems[1:], 2, params, seed=8)
    assert sampler.generate(small_problems, 3, params, seed=7) == a
    assert len({g.output for g in a[0]}) > 1
    sampler.close()
