"""The LoRA trainer on the tiny model: label mask, loss, saving, init policies, trackers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.config import CampaignConfig
from engine.errors import UserError
from engine.prompts import encode_prompt, format_prompt
from engine.train import (
    IGNORE,
    TrainExample,
    encode_example,
    flatten_metrics,
    log_round_metrics,
    lr_at,
    plan_batches,
    split_by_length,
    train_lora,
)


def make_cfg(tiny_model_dir, style: str = "chat", **train) -> CampaignConfig:
    return CampaignConfig.model_validate({
        "name": "t",
        "model": {"spec": str(tiny_model_dir), "device": "cpu", "prompt_style": style},
        "train": {"epochs": 2, "batch_size": 2, "learning_rate": 5e-3, "lora_r": 4, "lora_alpha": 8,
                  "lora_dropout": 0.0, **train},
    })


def examples(problems) -> list[TrainExample]:
    return [TrainExample(p, "```python\n" + p.prompt + p.canonical + "```") for p in problems]


def adapter_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from engine.config import ModelConfig
    from engine.models import load_tokenizer

    return load_tokenizer(ModelConfig(spec=str(tiny_model_dir)))


# ---------------------------------------------------------------------------- data


@pytest.mark.parametrize("style", ["chat", "completion"])
def test_loss_covers_the_output_tokens_only(tokenizer, small_problems, style):
    ex = examples(small_problems)[0]
    enc = encode_example(ex, style, tokenizer, max_seq_len=4096)
    prompt_ids = encode_prompt(format_prompt(ex.problem, style, tokenizer), style, tokenizer)
    n = len(prompt_ids)
    assert enc.input_ids[:n] == prompt_ids  # the exact prompt the sampler saw
    assert enc.labels[:n] == [IGNORE] * n
    assert enc.labels[n:] == enc.input_ids[n:]  # every output token (and the EOS) is learned
    assert enc.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(enc.input_ids[n:-1]) == ex.output


def test_truncation_keeps_the_prompt_and_cuts_the_end(tokenizer, small_problems):
    ex = examples(small_problems)[0]
    full = encode_example(ex, "chat", tokenizer, max_seq_len=4096)
    n_prompt = full.labels.count(IGNORE)
    cut = encode_example(ex, "chat", tokenizer, max_seq_len=n_prompt + 3)
    assert cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[: n_prompt + 3]
    assert sum(label != IGNORE for label in cut.labels) == 3


def test_batches_and_schedule():
    one = plan_batches(5, 1.0, 2, seed=0)
    assert [len(b) for b in one] == [2, 2, 1] and sorted(i for b in one for i in b) == list(range(5))
    assert plan_batches(5, 1.0, 2, seed=0) == one and plan_batches(5, 1.0, 2, seed=1) != one
    assert sum(len(b) for b in plan_batches(4, 1.5, 2, seed=0)) == 6  # fractional epochs
    assert sum(len(b) for b in plan_batches(4, 0.1, 2, seed=0)) == 1
    assert [lr_at(s, 4, 0, 1.0) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert [lr_at(s, 4, 2, 1.0) for s in range(4)] == [0.5, 1.0, 1.0, 0.5]


def test_split_by_length_keeps_every_example_and_bounds_padding():
    lengths = [100, 12, 98, 11, 50, 97, 10, 49]
    chunks = split_by_length(range(8), lengths, max_waste=0.1)
    assert sorted(i for c in chunks for i in c) == list(range(8))
    assert chunks == [[0, 2, 5], [4, 7], [1, 3, 6]]  # longest first, similar lengths together
    for c in chunks:
        padded = max(lengths[i] for i in c) * len(c)
        assert padded - sum(lengths[i] for i in c) <= 0.1 * padded
    assert split_by_length([3, 1], [5, 5, 5, 5]) == [[3, 1]]  # equal lengths: one chunk, order kept
    assert split_by_length([], lengths) == []


# ---------------------------------------------------------------------------- training


def test_loss_decreases_and_the_adapter_loads(tiny_model_dir, small_problems, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = make_cfg(tiny_model_dir, epochs=6)
    steps = []
    result = train_lora(cfg, examples(small_problems), tmp_path / "ckpt" / "1", None, seed=0,
                        on_step=lambda s, total, loss: steps.append((s, total, loss)))
    assert result.steps == 9 and len(result.losses) == 9  # ceil(6 * 3 / 2) micro-batches, accum 1
    assert [s for s, _, _ in steps] == list(range(1, 10)) and all(t == 9 for _, t, _ in steps)
    assert sum(result.losses[-3:]) < sum(result.losses[:3])
    assert result.tokens > 0 and result.label_tokens > 0 and result.examples == 3
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert not list((tmp_path / "ckpt").glob(".*tmp"))  # the temporary folder is gone

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(result.adapter_dir))
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_rerun_gives_the_same_adapter(tiny_model_dir, small_problems, tmp_path):
    import torch

    cfg = make_cfg(tiny_model_dir, lora_dropout=0.1, grad_accum=2)
    a = train_lora(cfg, examples(small_problems), tmp_path / "a", None, seed=3)
    b = train_lora(cfg, examples(small_problems), tmp_path / "b", None, seed=3)
    c = train_lora(cfg, examples(small_problems), tmp_path / "c", None, seed=4)
    assert a.losses == b.losses and a.steps == 2  # 3 micro-batches, accumulated by 2
    ta, tb, tc = adapter_tensors(a.adapter_dir), adapter_tensors(b.adapter_dir), adapter_tensors(c.adapter_dir)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert not all(torch.equal(ta[k], tc[k]) for k in ta)


def test_bucketing_by_length_leaves_the_gradient_unchanged(tiny_model_dir, small_problems, tmp_path):
    import torch

    # examples of very different lengths, so that bucketing really splits the batches
    exs = examples(small_problems) + [TrainExample(small_problems[0], "x")]
    runs = {on: train_lora(make_cfg(tiny_model_dir, batch_size=4, bucket_by_length=on), exs, tmp_path / str(on), None, seed=5)
            for on in (True, False)}
    assert runs[True].tokens == runs[False].tokens and runs[True].padded_tokens < runs[False].padded_tokens
    assert runs[True].losses == pytest.approx(runs[False].losses, rel=1e-4)
    ta, tb = adapter_tensors(runs[True].adapter_dir), adapter_tensors(runs[False].adapter_dir)
    assert all(torch.allclose(ta[k], tb[k], atol=1e-5) for k in ta)


def test_continue_starts_from_the_previous_adapter_and_base_does_not(tiny_model_dir, small_problems, tmp_path):
    import torch

    ex = examples(small_problems)
    first = train_lora(make_cfg(tiny_model_dir, epochs=4), ex, tmp_path / "1", None, seed=0)
    tiny = dict(epochs=0.1, learning_rate=1e-9)  # one step that barely moves: the start shows through
    cont = train_lora(make_cfg(tiny_model_dir, init="continue", **tiny), ex, tmp_path / "2c", first.adapter_dir, seed=1)
    base = train_lora(make_cfg(tiny_model_dir, init="base", **tiny), ex, tmp_path / "2b", first.adapter_dir, seed=1)
    fresh = train_lora(make_cfg(tiny_model_dir, init="continue", **tiny), ex, tmp_path / "2f", None, seed=1)
    t1, tc, tb, tf = (adapter_tensors(r.adapter_dir) for r in (first, cont, base, fresh))
    assert all(torch.allclose(t1[k], tc[k], atol=1e-6) for k in t1)  # continued from round 1
    assert cont.losses[0] < base.losses[0]  # round 1's learning is kept
    assert all(torch.equal(tb[k], tf[k]) for k in tb)  # "base" ignores the adapter it is given
    assert all(float(v.abs().max()) < 1e-6 for k, v in tb.items() if "lora_B" in k)  # fresh LoRA: B ~ 0


def test_no_examples_saves_a_no_op_adapter(tiny_model_dir, tmp_path):
    result = train_lora(make_cfg(tiny_model_dir), [], tmp_path / "1", None, seed=0)
    assert result.steps == 0 and (tmp_path / "1" / "adapter_config.json").exists()


def test_should_stop_saves_nothing(tiny_model_dir, small_problems, tmp_path):
    result = train_lora(make_cfg(tiny_model_dir), examples(small_problems), tmp_path / "1", None, seed=0,
                        should_stop=lambda: True)
    assert result.stopped and result.steps == 0 and not (tmp_path / "1").exists()


def test_on_step_raising_leaves_no_adapter(tiny_model_dir, small_problems, tmp_path):
    def boom(step, total, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(make_cfg(tiny_model_dir), examples(small_problems), tmp_path / "1", None, seed=0, on_step=boom)
    assert not (tmp_path / "1").exists()


def test_missing_peft_is_one_line(tiny_model_dir, small_problems, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError) as e:
        train_lora(make_cfg(tiny_model_dir), examples(small_problems), tmp_path / "1", None, seed=0)
    assert "pip install peft" in str(e.value) and "\n" not in str(e.value)


def test_bad_target_modules_is_one_line(tiny_model_dir, small_problems, tmp_path):
    with pytest.raises(UserError, match="target_modules"):
        train_lora(make_cfg(tiny_model_dir, target_modules=["no_such_proj"]), examples(small_problems),
                   tmp_path / "1", None, seed=0)


# ---------------------------------------------------------------------------- trackers


def test_tensorboard_logs_steps_and_round_metrics(tiny_model_dir, small_problems, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg(tiny_model_dir, trackers=["tensorboard"])
    tracker_dir = tmp_path / "trackers"
    train_lora(cfg, examples(small_problems), tmp_path / "1", None, seed=0, tracker_dir=tracker_dir, round=1)
    log_round_metrics(cfg, tracker_dir, 1, {"train": {"pass@1": 0.25}, "heldout": {"pass@1": 0.5}, "note": "x"})
    tags = set()
    for events in (tracker_dir / cfg.name).glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss/round_1", "train/lr/round_1", "round/train/pass@1", "round/heldout/pass@1"} <= tags


def test_flatten_metrics():
    assert flatten_metrics({"a": {"b": 1, "c": "x", "d": True, "e": float("nan")}, "f": 2.5}) == {"a/b": 1.0, "f": 2.5}


def test_missing_tracker_package_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match="pip install wandb"):
        log_round_metrics(make_cfg(tiny_model_dir, trackers=["wandb"]), tmp_path, 1, {"x": 1})


def test_loss_on_label_positions_only_equals_the_full_logits_loss(tiny_model_dir, small_problems, tokenizer):
    import torch

    from engine.models import load_model
    from engine.train import _can_split_head, build_lora_model, collate, label_loss_sum

    cfg = make_cfg(tiny_model_dir)
    base, tok = load_model(cfg.model, device="cpu")
    model = build_lora_model(cfg, base, None)
    assert _can_split_head(model)
    batch = [encode_example(e, "chat", tok, 512) for e in examples(small_problems)]
    ids, mask, labels = collate(batch, tok.pad_token_id)
    split = label_loss_sum(model, ids, mask, labels, True)
    full = label_loss_sum(model, ids, mask, labels, False)
    assert split.item() == pytest.approx(full.item(), rel=1e-5)
    grads = []
    for loss in (split, full):
        model.zero_grad()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert all(torch.allclose(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6) for n in grads[0])


def test_example_weights_scale_each_rows_loss(tiny_model_dir, small_problems):
    """Hinted samples may weigh less (hint.weight): a row's weight scales its tokens' loss, on both
    loss paths; all weights 1 is the unweighted loss."""
    import torch

    from engine.models import load_model
    from engine.train import build_lora_model, collate, label_loss_sum

    cfg = make_cfg(tiny_model_dir)
    base, tok = load_model(cfg.model, device="cpu")
    model = build_lora_model(cfg, base, None)
    batch = [encode_example(e, "chat", tok, 512) for e in examples(small_problems)][:2]
    ids, mask, labels = collate(batch, tok.pad_token_id)
    with torch.no_grad():
        rows = [label_loss_sum(model, ids[i:i + 1], mask[i:i + 1], labels[i:i + 1]).item() for i in range(2)]
        for split in (True, False):
            ones = label_loss_sum(model, ids, mask, labels, split, torch.tensor([1.0, 1.0])).item()
            weighted = label_loss_sum(model, ids, mask, labels, split, torch.tensor([1.0, 0.25])).item()
            assert ones == pytest.approx(sum(rows), rel=1e-4)
            assert weighted == pytest.approx(rows[0] + 0.25 * rows[1], rel=1e-4)
