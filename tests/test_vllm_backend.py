"""The vllm backend on CPU: everything but generation itself, against a stand-in `vllm` module that
records what it was asked (vLLM needs a CUDA GPU; bench/sampling.py --backend vllm measures it there)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from engine.config import CampaignConfig
from engine.errors import UserError
from engine.prompts import encode_prompt, format_prompt
from engine.sampler import SamplingParams, choose_backend, make_sampler


@dataclass
class FakeParams:  # the fields of vllm.SamplingParams that the backend sets
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list = field(default_factory=list)
    include_stop_str_in_output: bool = False
    seed: int | None = None


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class FakeLLM:
    """Answers request k's sample i with a chat reply whose code names its seed and index."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, use_tqdm=True, lora_request=None):
        self.calls.append((prompts, params, lora_request))
        outs = []
        for prompt, p in zip(prompts, params):
            samples = [types.SimpleNamespace(index=i, token_ids=list(range(5 + i)),
                                             text=f"Sure:\n```python\n    return {p.seed % 1000} + {i}\n```\nand more text")
                       for i in reversed(range(p.n))]  # out of order: the backend sorts by index
            outs.append(types.SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=samples))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = FakeParams
    vllm.LLM = lambda **kw: pytest.fail("no real engine in tests")
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    return vllm


def make_cfg(tiny_model_dir, style="chat", **model) -> CampaignConfig:
    return CampaignConfig.model_validate({"name": "t", "model": {"spec": str(tiny_model_dir), "backend": "vllm",
                                                                 "prompt_style": style, **model}})


def test_auto_picks_vllm_only_with_a_gpu(fake_vllm, tiny_model_dir, monkeypatch):
    import torch

    cfg = make_cfg(tiny_model_dir, backend="auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend(cfg) == "hf"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_backend(cfg) == "vllm"


def test_without_a_gpu_is_one_line(fake_vllm, tiny_model_dir):
    with pytest.raises(UserError) as e:
        make_sampler(make_cfg(tiny_model_dir, device="cpu"))
    assert "CUDA GPU" in str(e.value) and "\n" not in str(e.value)


def test_requests_carry_the_prompts_params_and_seeds(fake_vllm, tiny_model_dir, small_problems):
    from engine.backends.vllm import VLLMSampler

    llm = FakeLLM()
    sampler = VLLMSampler(make_cfg(tiny_model_dir), llm=llm)
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=32)
    gens = sampler.generate(small_problems[:2], 3, params, seed=7)
    prompts, vparams, lora = llm.calls[0]
    tok = sampler.tokenizer
    assert [p["prompt_token_ids"] for p in prompts] == [
        encode_prompt(format_prompt(p, "chat", tok), "chat", tok) for p in small_problems[:2]]  # as hf builds them
    assert [(v.n, v.temperature, v.top_p, v.max_tokens, v.include_stop_str_in_output) for v in vparams] == [(3, 0.8, 0.95, 32, True)] * 2
    assert vparams[0].stop == ["\n```\n"] and vparams[0].seed != vparams[1].seed and lora is None
    sampler.generate(small_problems[:2], 3, params, seed=7)
    assert [v.seed for v in llm.calls[1][1]] == [v.seed for v in vparams]  # the same call, the same seeds
    sampler.generate(small_problems[:2], 3, params, seed=8)
    assert [v.seed for v in llm.calls[2][1]] != [v.seed for v in vparams]

    # outputs in index order, cut after the closing fence as hf cuts them, completions built from them
    assert [len(g) for g in gens] == [3, 3]
    first = gens[0][0]
    assert first.output == f"Sure:\n```python\n    return {vparams[0].seed % 1000} + 0\n```"
    assert first.completion.endswith(f"    return {vparams[0].seed % 1000} + 0\n") and first.n_tokens == 5
    assert [g.n_tokens for g in gens[0]] == [5, 6, 7]
    assert sampler.stats["sequences"] == 18


def test_greedy_and_completion_style(fake_vllm, tiny_model_dir, small_problems):
    from engine.backends.vllm import VLLMSampler
    from engine.prompts import stop_strings

    llm = FakeLLM()
    sampler = VLLMSampler(make_cfg(tiny_model_dir, style="completion"), llm=llm)
    sampler.generate(small_problems[:1], 1, SamplingParams(temperature=0.0, top_p=0.9, max_new_tokens=8), seed=1)
    v = llm.calls[0][1][0]
    assert v.temperature == 0.0 and v.top_p == 1.0 and v.stop == stop_strings("completion")


def test_adapters_get_one_id_per_version(fake_vllm, tiny_model_dir, small_problems, tmp_path):
    import os

    from engine.backends.vllm import VLLMSampler

    llm = FakeLLM()
    sampler = VLLMSampler(make_cfg(tiny_model_dir), llm=llm)
    with pytest.raises(UserError, match="retrain"):
        sampler.set_adapter(tmp_path / "missing")
    a, b = tmp_path / "1", tmp_path / "2"
    for d in (a, b):
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        (d / "adapter_model.safetensors").write_bytes(b"weights")
    sampler.set_adapter(a)
    first = sampler.lora
    sampler.set_adapter(b)
    assert (first.lora_int_id, sampler.lora.lora_int_id) == (1, 2) and sampler.lora.lora_path == str(b)
    sampler.set_adapter(a)
    assert sampler.lora == first  # the same files: the same id, vLLM reuses what it loaded
    os.utime(a / "adapter_model.safetensors", ns=(1, 10**18))  # round 1 retrained: new weights, a new id
    sampler.set_adapter(a)
    assert sampler.lora.lora_int_id == 3
    sampler.generate(small_problems[:1], 1, SamplingParams(0.8, 0.95, 8), seed=1)
    assert llm.calls[-1][2] is sampler.lora
    sampler.set_adapter(None)
    assert sampler.lora is None


def test_lora_rank_must_fit_vllm():
    from engine.backends.vllm import max_lora_rank

    assert [max_lora_rank(r) for r in (4, 8, 9, 16, 64)] == [8, 8, 16, 16, 64]
    with pytest.raises(UserError, match="lora_r"):
        max_lora_rank(512)


def test_plain_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    from engine.config import ModelConfig
    from engine.models import plain_checkpoint

    assert plain_checkpoint(ModelConfig(spec=str(tiny_model_dir))) == str(tiny_model_dir.resolve())
    assert plain_checkpoint(ModelConfig(spec="org/model")) == "org/model"  # a hub id goes to vLLM as it is
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("SDTUI_MODEL_CACHE", "off")
    with pytest.raises(UserError, match="SDTUI_MODEL_CACHE"):
        plain_checkpoint(ModelConfig(spec=str(gguf)))
