"""Samplers: the factory, the hf backend on the tiny model, the replay backend."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.config import CampaignConfig
from engine.errors import UserError
from engine.problems import Problem
from engine.sampler import Generation, SamplingParams, make_sampler

SAMPLE = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=16)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=16)


def make_cfg(model: dict, **sections) -> CampaignConfig:
    return CampaignConfig.model_validate({"name": "t", "model": model, **sections})


@pytest.fixture(scope="module")
def hf_sampler(tiny_model_dir):
    """One hf sampler on the tiny model for the module (completion style: no chat template needed)."""
    cfg = make_cfg({"spec": str(tiny_model_dir), "backend": "hf", "prompt_style": "completion", "device": "cpu"},
                   sampling={"batch_size": 4})
    sampler = make_sampler(cfg)
    yield sampler
    sampler.close()


@pytest.fixture
def fresh(hf_sampler):
    """The shared sampler, reset to the base model and its own stop strings after each test."""
    stops = list(hf_sampler.stops)
    yield hf_sampler
    hf_sampler.set_adapter(None)
    hf_sampler.stops = stops


# ---------------------------------------------------------------------------- factory


def test_factory_picks_hf_without_vllm(tiny_model_dir):
    sampler = make_sampler(make_cfg({"spec": str(tiny_model_dir), "backend": "auto", "device": "cpu"}))
    assert sampler.name == "hf"


def test_vllm_without_vllm_is_one_line(monkeypatch):
    import engine.sampler as sampler_mod

    real = sampler_mod.importlib.util.find_spec
    monkeypatch.setattr(sampler_mod.importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(UserError) as e:
        make_sampler(make_cfg({"backend": "vllm"}))
    assert "pip install" in str(e.value) and "\n" not in str(e.value)


def test_factory_builds_replay(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"task_id": "a", "completion": "x"}) + "\n")
    sampler = make_sampler(make_cfg({"backend": "replay", "replay_file": str(path)}))
    assert sampler.name == "replay"
    with pytest.raises(UserError, match="replay_file"):
        make_sampler(make_cfg({"backend": "replay"}))


# ---------------------------------------------------------------------------- hf


def test_hf_shapes_and_types(fresh, small_problems):
    gens = fresh.generate(small_problems, 3, SAMPLE, seed=1)
    assert len(gens) == 3 and all(len(g) == 3 for g in gens)
    for per_problem in gens:
        for g in per_problem:
            assert isinstance(g, Generation)
            assert 0 < g.n_tokens <= SAMPLE.max_new_tokens
            assert g.completion == g.output  # completion style


def test_hf_is_deterministic(fresh, small_problems):
    a = fresh.generate(small_problems, 3, SAMPLE, seed=11)
    fresh.generate(small_problems[:1], 2, SAMPLE, seed=99)  # other work in between changes nothing
    b = fresh.generate(small_problems, 3, SAMPLE, seed=11)
    c = fresh.generate(small_problems, 3, SAMPLE, seed=12)
    assert a == b
    assert a != c
    # samples of one problem differ from each other (sampling, not n copies of one)
    assert len({g.output for g in a[0]}) > 1


def test_hf_greedy_ignores_the_seed(fresh, small_problems):
    a = fresh.generate(small_problems[:2], 2, GREEDY, seed=1)
    b = fresh.generate(small_problems[:2], 2, GREEDY, seed=2)
    assert a == b
    assert a[0][0] == a[0][1]


def test_hf_stop_strings_cut_the_output(fresh, small_problems):
    problem = small_problems[0]
    params = SamplingParams(1.0, 1.0, 16)  # the random model's greedy text is all newlines
    fresh.stops = []
    full = fresh.generate([problem], 1, params, seed=0)[0][0]
    assert full.n_tokens == params.max_new_tokens
    # a stop string from the middle of the output, first seen there: generation must end there
    text = full.output
    cut_at = next(i for i in range(len(text) // 2, len(text) - 2) if text.find(text[i : i + 2]) == i)
    stop = text[cut_at : cut_at + 2]
    fresh.stops = [stop]
    stopped = fresh.generate([problem], 1, params, seed=0)[0][0]
    assert stopped.output == text[:cut_at]
    assert stopped.n_tokens < full.n_tokens
    # n_tokens counts up to and including the token that completed the stop (same seed: same prefix)
    fresh.stops = []
    upto = lambda k: fresh.generate([problem], 1, SamplingParams(1.0, 1.0, k), seed=0)[0][0].output
    assert stop in upto(stopped.n_tokens)
    assert stop not in upto(stopped.n_tokens - 1)


def test_hf_batch_ends_when_every_sequence_stopped(fresh, small_problems, monkeypatch):
    """With stops every sequence hits early, generate must not run to max_new_tokens."""
    calls = []
    real_forward = fresh.model.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(fresh.model, "forward", counting_forward)
    fresh.stops = list("etaoinsr ")  # gibberish hits one of these within a few tokens
    gens = fresh.generate(small_problems[:2], 2, SamplingParams(0.8, 0.95, 64), seed=3)
    assert max(g.n_tokens for row in gens for g in row) < 64
    assert len(calls) < 64


def test_hf_chat_style(tiny_model_dir, small_problems):
    cfg = make_cfg({"spec": str(tiny_model_dir), "backend": "hf", "prompt_style": "chat", "device": "cpu"})
    sampler = make_sampler(cfg)
    gens = sampler.generate(small_problems[:1], 2, SAMPLE, seed=5)[0]
    for g in gens:  # gibberish without a fence: the raw text becomes the function body
        assert g.completion.startswith("    ") or g.completion.startswith("\n")
    sampler.close()


@pytest.mark.parametrize("merged", [True, False], ids=["merged (CPU)", "unmerged (GPU)"])
def test_set_adapter_switches_without_leaking(fresh, small_problems, tmp_path, tiny_model_dir, merged, monkeypatch):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(fresh, "merged", merged)

    def make_adapter(path, seed):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                               LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # a fresh LoRA is a no-op (B = 0): make these change the model
                torch.nn.init.normal_(p, std=0.5)
        model.save_pretrained(path)
        return path

    a, b = make_adapter(tmp_path / "a", 1), make_adapter(tmp_path / "b", 2)
    probe = small_problems[:2]
    base = fresh.generate(probe, 2, GREEDY, seed=0)
    fresh.set_adapter(a)
    with_a = fresh.generate(probe, 2, GREEDY, seed=0)
    fresh.set_adapter(b)
    with_b = fresh.generate(probe, 2, GREEDY, seed=0)
    fresh.set_adapter(None)
    base_again = fresh.generate(probe, 2, GREEDY, seed=0)
    fresh.set_adapter(b)
    b_only = fresh.generate(probe, 2, GREEDY, seed=0)
    assert with_a != base and with_b != base and with_a != with_b
    assert base_again == base  # nothing of a or b is left in the base model
    assert b_only == with_b  # b after a == b alone
    # a round retrained into the same folder is picked up, not served from memory
    shutil.rmtree(b)
    shutil.copytree(a, b, copy_function=shutil.copy)  # new files, new mtimes
    fresh.set_adapter(b)
    assert fresh.generate(probe, 2, GREEDY, seed=0) == with_a
    with pytest.raises(UserError, match="no LoRA adapter"):
        fresh.set_adapter(tmp_path / "missing")
    assert not any("lora" in name for name, _ in fresh.base.named_parameters())
    if merged:  # the same samples as the adapter applied unmerged (fp32: merging is exact enough)
        fresh.merged = False
        fresh.set_adapter(a)
        assert fresh.generate(probe, 2, GREEDY, seed=0) == with_a
        fresh.set_adapter(None)


# ---------------------------------------------------------------------------- replay


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def P(task_id: str) -> Problem:
    return Problem(task_id=task_id, prompt="def f():\n", entry_point="f", test="")


def test_replay_rows_without_round_wrap_around(tmp_path):
    from engine.backends.replay import ReplaySampler

    path = write_rows(tmp_path / "s.jsonl", [{"task_id": "a", "completion": f"a{i}"} for i in range(5)]
                      + [{"task_id": "b", "completion": "b0 b0"}])
    sampler = ReplaySampler(path=path)
    out = lambda r: [[g.completion for g in row] for row in sampler.generate([P("a"), P("b")], 2, SAMPLE, 0, round=r)]
    assert out(0) == [["a0", "a1"], ["b0 b0", "b0 b0"]]
    assert out(1) == [["a2", "a3"], ["b0 b0", "b0 b0"]]
    assert out(2) == [["a4", "a0"], ["b0 b0", "b0 b0"]]
    g = sampler.generate([P("b")], 1, SAMPLE, 0)[0][0]
    assert (g.output, g.n_tokens) == ("b0 b0", 2)


def test_replay_units_of_one_problem_read_different_rows(tmp_path):
    """n = 4 split into two units of 2 (start 0 and 2) reads rows [r*4, r*4+4) once each."""
    from engine.backends.replay import ReplaySampler

    path = write_rows(tmp_path / "s.jsonl", [{"task_id": "a", "completion": f"a{i}"} for i in range(8)])
    cfg = make_cfg({"backend": "replay", "replay_file": str(path)}, sampling={"n": 4})
    sampler = ReplaySampler(cfg)
    rows = lambda r, s: [g.completion for g in sampler.generate([P("a")], 2, SAMPLE, 0, round=r, start=s)[0]]
    assert rows(0, 0) + rows(0, 2) == ["a0", "a1", "a2", "a3"]
    assert rows(1, 0) + rows(1, 2) == ["a4", "a5", "a6", "a7"]


def test_replay_rows_with_round(tmp_path):
    from engine.backends.replay import ReplaySampler

    path = write_rows(tmp_path / "s.jsonl", [
        {"task_id": "a", "completion": "r0", "round": 0},
        {"task_id": "a", "completion": "r1x", "round": 1},
        {"task_id": "a", "completion": "r1y", "round": 1},
    ])
    sampler = ReplaySampler(path=path)
    comps = lambda r, n: [g.completion for g in sampler.generate([P("a")], n, SAMPLE, 0, round=r)[0]]
    assert comps(0, 2) == ["r0", "r0"]
    assert comps(1, 3) == ["r1x", "r1y", "r1x"]
    with pytest.raises(UserError, match="round 2"):
        comps(2, 1)


def test_replay_errors_are_one_line(tmp_path):
    from engine.backends.replay import ReplaySampler

    path = write_rows(tmp_path / "s.jsonl", [{"task_id": "a", "completion": "x"}])
    with pytest.raises(UserError) as e:
        ReplaySampler(path=path).generate([P("missing/1")], 1, SAMPLE, 0)
    assert "'missing/1'" in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="not found"):
        ReplaySampler(path=tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "completion": "x", "round": "one"}\n')
    with pytest.raises(UserError, match="line 1"):
        ReplaySampler(path=bad)
    bad.write_text("{not json\n")
    with pytest.raises(UserError, match="line 1"):
        ReplaySampler(path=bad)


def test_hf_calls_tick_while_generating_and_tick_can_interrupt(fresh, small_problems, monkeypatch):
    import engine.backends.hf as hf
    from engine.sampler import Interrupted

    monkeypatch.setattr(hf, "TICK_SECONDS", 0.0)  # every step
    calls = []
    fresh.tick = lambda: calls.append(1)
    try:
        before = fresh.generate(small_problems[:1], 2, SAMPLE, seed=3)
        assert len(calls) >= 2

        def stop_now():
            raise Interrupted()

        fresh.tick = stop_now
        with pytest.raises(Interrupted):
            fresh.generate(small_problems[:1], 2, SAMPLE, seed=3)
        fresh.tick = None
        assert fresh.generate(small_problems[:1], 2, SAMPLE, seed=3) == before  # nothing of it lingers
    finally:
        fresh.tick = None
