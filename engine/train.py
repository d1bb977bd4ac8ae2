"""LoRA SFT on the model's own verified samples: a plain loop (nanoGPT style), peft + accelerate.

Each example is the prompt text the sampler used (`format_prompt`) followed by the model's own
output and an end-of-sequence token; the loss covers only the output and the EOS (prompt tokens
are labelled -100), averaged over those tokens per optimizer step. AdamW, linear warmup then
linear decay to zero, gradient accumulation, fractional epochs, right truncation at max_seq_len.

Policies (DESIGN section 2): `train.init = "continue"` starts from the previous round's adapter
(passed in as `init_adapter`), `"base"` starts a fresh LoRA on the base model every round.

Seeded from `seed` (LoRA init, data order, dropout): a rerun on CPU gives the same adapter.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from engine.errors import UserError
from engine.problems import Problem
from engine.prompts import encode_prompt, format_prompt

if TYPE_CHECKING:
    from engine.config import CampaignConfig

IGNORE = -100  # label of tokens the loss skips (prompt, padding)

# peft calls a transformers method that transformers 5 deprecates: noise in every engine log
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclass
class TrainExample:
    problem: Problem
    output: str  # the model's own text to learn (Generation.output)
    weight: float = 1.0  # its tokens' share in the loss (hinted samples may weigh less)


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int  # optimizer steps taken
    tokens: int  # tokens processed (prompt + output, no padding)
    losses: list[float]  # mean loss per optimizer step
    seconds: float
    examples: int = 0  # examples used (after dropping those truncated to nothing)
    truncated: int = 0  # examples cut at max_seq_len
    label_tokens: int = 0  # tokens the loss was computed on, summed over steps
    stopped: bool = False  # should_stop() ended training early; nothing was saved
    padded_tokens: int = 0  # tokens computed, padding included (tokens / padded_tokens = useful share)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    weight: float = 1.0


def encode_example(example: TrainExample, style: str, tokenizer, max_seq_len: int) -> Encoded:
    """Token ids and labels of one example: prompt tokens -> IGNORE, output + EOS -> themselves.

    The prompt is tokenized exactly as the sampler tokenized it; the output separately, so the
    boundary between the two is exact. Truncation drops the end (the prompt stays as sampled).
    """
    prompt_ids = encode_prompt(format_prompt(example.problem, style, tokenizer), style, tokenizer)
    output_ids = tokenizer(example.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = prompt_ids + output_ids
    labels = [IGNORE] * len(prompt_ids) + output_ids
    truncated = len(ids) > max_seq_len
    return Encoded(ids[:max_seq_len], labels[:max_seq_len], truncated, example.weight)


def collate(batch: Sequence[Encoded], pad_id: int):
    """Right-pad a micro-batch into (input_ids, attention_mask, labels) tensors."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch]
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(labels)


def plan_batches(n_examples: int, epochs: float, batch_size: int, seed: int) -> list[list[int]]:
    """Micro-batches of example indices: a fresh shuffle per epoch, the last epoch maybe partial."""
    import torch

    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    for _ in range(math.ceil(epochs)):
        order += torch.randperm(n_examples, generator=g).tolist()
    order = order[: max(1, math.ceil(epochs * n_examples))]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def split_by_length(indices: Sequence[int], lengths: Sequence[int], max_waste: float = 0.1) -> list[list[int]]:
    """Split one micro-batch into chunks of similar length, longest first, each padded only to its own
    longest: a chunk grows while its padding stays under `max_waste` of its padded tokens.

    The step's loss is a sum over label tokens divided by the step's label count, so the gradient is
    the same however the examples are chunked; only padding (wasted compute) changes. On a CPU the
    cost is about linear in tokens, so a few narrower matmuls beat one wide, padded one.
    """
    order = sorted(indices, key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        chunk = chunks[-1] if chunks else None
        if chunk is not None:
            width = lengths[chunk[0]]
            padded = width * (len(chunk) + 1)
            waste = padded - sum(lengths[j] for j in chunk) - lengths[i]
            if waste <= max_waste * padded:
                chunk.append(i)
                continue
        chunks.append([i])
    return chunks


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warmup to `peak` over `warmup` steps, then linear decay to zero at `total`."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed % 2**63)


def _peft():
    try:
        import peft
    except ImportError:
        raise UserError("training needs peft: pip install peft") from None
    return peft


def _check_trackers(trackers: Sequence[str]) -> None:
    import importlib.util

    for name in trackers:
        module = "tensorboard" if name == "tensorboard" else name
        if importlib.util.find_spec(module) is None:
            raise UserError(f"train.trackers includes {name!r} but {name} is not installed: pip install {name}")


def _tracker_init_kwargs(cfg: "CampaignConfig", project_dir: Path) -> dict:
    """wandb: one run per campaign (a stable id), resumed by every round and by a restarted engine."""
    import hashlib

    if "wandb" not in cfg.train.trackers:
        return {}
    run_id = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]
    return {"wandb": {"id": run_id, "resume": "allow", "name": cfg.name}}


def build_lora_model(cfg: "CampaignConfig", base, init_adapter: Path | None):
    """Wrap `base` in a trainable LoRA: the previous adapter (init = continue) or a fresh one."""
    peft = _peft()
    if init_adapter is not None and cfg.train.init == "continue":
        if not (Path(init_adapter) / "adapter_config.json").exists():
            raise UserError(f"no LoRA adapter at {init_adapter} to continue from; retrain that round or set train.init = \"base\"")
        return peft.PeftModel.from_pretrained(base, str(init_adapter), is_trainable=True)
    t = cfg.train
    lora = peft.LoraConfig(
        r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=t.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(base, lora)
    except ValueError as e:
        raise UserError(f"train.target_modules = {t.target_modules!r} does not fit this model ({str(e).splitlines()[0]}); fix it") from None


def train_lora(
    cfg: "CampaignConfig",
    examples: Sequence[TrainExample],
    out_dir: Path,
    init_adapter: Path | None,
    seed: int,
    on_step: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    tracker_dir: Path | None = None,
    round: int | None = None,
) -> TrainResult:
    """Train a LoRA adapter on `examples` and save it to `out_dir` (peft save_pretrained).

    `on_step(step, total_steps, loss)` runs after each optimizer step (it may raise to abort);
    `should_stop()` is checked before each step: when it turns true, training ends and nothing is
    saved (`stopped=True`). The adapter appears at `out_dir` atomically, complete or not at all.
    `round` names the tracker tags (`train/loss/round_<r>`). The trainer loads its own copy of the
    base model (fast: a GGUF is dequantized once and cached, see engine.models), so the sampler's
    copy is never touched.
    """
    import torch
    from accelerate import Accelerator

    from engine.models import load_model, resolve_device

    started = time.time()
    t = cfg.train
    out_dir = Path(out_dir)
    if t.trackers:
        _check_trackers(t.trackers)
    seed_everything(seed)

    device = resolve_device(cfg.model.device)
    base, tokenizer = load_model(cfg.model, device=device)
    model = build_lora_model(cfg, base, init_adapter)

    encoded = [encode_example(e, cfg.model.prompt_style, tokenizer, t.max_seq_len) for e in examples]
    n_truncated = sum(e.truncated for e in encoded)
    encoded = [e for e in encoded if any(label != IGNORE for label in e.labels)]  # prompt filled it all

    lengths = [len(e.input_ids) for e in encoded]
    batches = plan_batches(len(encoded), t.epochs, t.batch_size, seed) if encoded else []
    total_steps = math.ceil(len(batches) / t.grad_accum)
    warmup = round_half_up(t.warmup_ratio * total_steps)

    tracker_dir = Path(tracker_dir) if tracker_dir is not None else out_dir.parent / "trackers"
    accelerator = Accelerator(
        cpu=not device.startswith("cuda"),
        log_with=list(t.trackers) or None,
        project_dir=str(tracker_dir) if t.trackers else None,
    )
    if t.trackers:
        tracker_dir.mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers(_tracker_project(cfg), config=_flat_config(cfg), init_kwargs=_tracker_init_kwargs(cfg, tracker_dir))
    tag = f"/round_{round}" if round is not None else ""

    head_only_on_labels = _can_split_head(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    losses: list[float] = []
    tokens = label_tokens = padded = 0
    stopped = False
    try:
        for step in range(total_steps):
            if should_stop is not None and should_stop():
                stopped = True
                break
            lr = lr_at(step, total_steps, warmup, t.learning_rate)
            for group in optimizer.param_groups:
                group["lr"] = lr
            group_batches = batches[step * t.grad_accum : (step + 1) * t.grad_accum]
            # the loss is a mean over every label token of the step, however they split into micro-batches
            n_labels = sum(sum(label != IGNORE for label in encoded[i].labels[1:]) for mb in group_batches for i in mb)
            chunks = [c for mb in group_batches for c in split_by_length(mb, lengths)] if t.bucket_by_length else group_batches
            step_loss = 0.0
            for mb in chunks:
                input_ids, mask, labels = (x.to(accelerator.device) for x in collate([encoded[i] for i in mb], tokenizer.pad_token_id))
                weights = [encoded[i].weight for i in mb]
                weights = None if all(w == 1.0 for w in weights) else torch.tensor(weights, device=accelerator.device)
                loss = label_loss_sum(model, input_ids, mask, labels, head_only_on_labels, weights) / max(1, n_labels)
                accelerator.backward(loss)
                step_loss += loss.item()
                tokens += int(mask.sum())
                padded += mask.numel()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            label_tokens += n_labels
            losses.append(step_loss)
            if t.trackers:
                accelerator.log({f"train/loss{tag}": step_loss, f"train/lr{tag}": lr}, step=step + 1)
            if on_step is not None:
                on_step(step + 1, total_steps, step_loss)
        if not stopped:
            _save_adapter(accelerator.unwrap_model(model), out_dir)
    finally:
        if t.trackers:
            accelerator.end_training()
        del model, optimizer, base
        accelerator.free_memory()

    return TrainResult(
        adapter_dir=out_dir,
        steps=len(losses),
        tokens=tokens,
        losses=losses,
        seconds=time.time() - started,
        examples=len(encoded),
        truncated=n_truncated,
        label_tokens=label_tokens,
        stopped=stopped,
        padded_tokens=padded,
    )


def _can_split_head(model) -> bool:
    """Whether the output layer can be applied to chosen positions only: the model is a decoder plus
    a plain, untrained linear head, with nothing between them (no logit soft-capping or scaling)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    cfg = getattr(base, "config", None)
    if head is None or cfg is None or not hasattr(base, "get_decoder") or base.get_decoder() is None:
        return False
    if any(getattr(cfg, a, None) not in (None, 1.0, 0.0) for a in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return False
    return type(head).__name__ == "Linear" and not any(p.requires_grad for p in head.parameters())


def label_loss_sum(model, input_ids, mask, labels, head_only_on_labels: bool = True, weights=None):
    """Summed next-token cross-entropy over the label positions of a micro-batch; with `weights`
    (one per row), each row's tokens count that much.

    The output layer (hidden -> vocabulary) is applied only where there is a label: the prompt,
    most of each example, needs no logits. That skips a [tokens x vocab] fp32 tensor, its softmax
    and their gradients (the largest allocations of a step for a 49k-152k vocabulary), with the
    same loss. `head_only_on_labels=False` computes every logit (models `_can_split_head` rejects).
    """
    import torch

    targets = labels[:, 1:]
    reduction = "sum" if weights is None else "none"
    if not head_only_on_labels:
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 targets.reshape(-1), ignore_index=IGNORE, reduction=reduction)
        # ignored positions come back as 0 with reduction="none"
        return loss if weights is None else (loss.view(targets.shape) * weights[:, None]).sum()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
    where = targets != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][where])
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[where], reduction=reduction)
    return loss if weights is None else (loss * weights[:, None].expand_as(targets)[where]).sum()


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _save_adapter(model, out_dir: Path) -> None:
    """Write the adapter beside `out_dir`, then move it into place: a killed run leaves no half adapter."""
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)  # an earlier attempt of this round, never marked complete
    tmp.rename(out_dir)


# ---------------------------------------------------------------------------- trackers


def _tracker_project(cfg: "CampaignConfig") -> str:
    return cfg.name


def _flat_config(cfg: "CampaignConfig") -> dict:
    """The config as flat scalars (tensorboard's hparams take nothing else)."""
    out = {}
    for section, values in cfg.model_dump().items():
        if isinstance(values, dict):
            for k, v in values.items():
                out[f"{section}.{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
        else:
            out[section] = values
    return out


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Nested round metrics -> {"train/pass@1": 0.25, ...}, numbers only."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def log_round_metrics(cfg: "CampaignConfig", project_dir: Path, round: int, metrics: dict) -> None:
    """Log one round's metrics (nested dicts are flattened) to the campaign's trackers at step `round`."""
    if not cfg.train.trackers:
        return
    _check_trackers(cfg.train.trackers)
    values = {f"round/{k}": v for k, v in flatten_metrics(metrics).items()}
    if not values:
        return
    project_dir = Path(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    # The tracker classes directly: an Accelerator here would share the process-wide state.
    from accelerate import tracking

    for name in cfg.train.trackers:
        if name == "tensorboard":
            tracker = tracking.TensorBoardTracker(_tracker_project(cfg), str(project_dir))
        else:
            kwargs = _tracker_init_kwargs(cfg, project_dir)["wandb"]
            tracker = tracking.WandBTracker(_tracker_project(cfg), **kwargs)
        tracker.start()
        tracker.log(values, step=round)
        tracker.finish()
