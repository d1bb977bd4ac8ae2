"""LoRA SFT speed of the engine's trainer against a plain transformers `Trainer` + peft, in one run.

    python bench/training.py                    # the demo training set, the demo's train settings
    python bench/training.py --epochs 4 --repeat 2 --json out.json
    python bench/training.py --record WORKSPACE:CAMPAIGN   # (re)write the data file from a real run

Data: `bench/data/demo_train.jsonl` (task_id + output: the passing, deduplicated samples of a real
run of campaigns/demo.toml, see docs/performance.md), encoded exactly as the engine encodes them
(prompt tokens labelled -100, output + EOS learned, right truncation at train.max_seq_len).

Variants, each in its own process (its own model, its own peak RSS), the same seed, the same LoRA
init and the same example order (the engine's `plan_batches`; the Trainer reads that order
sequentially), so that the loss curves can be compared step by step:

- `trainer`: `transformers.Trainer` + peft `get_peft_model`, `DataCollatorForSeq2Seq` padding,
  AdamW (torch), linear schedule, same batch size / accumulation / learning rate / weight decay;
- `ours`: `engine.train.train_lora` as the runner calls it (length bucketing on, the default);
- `ours-padded`: the same with `train.bucket_by_length = false` (one padded batch per step).

Timed: the training loop only (first step to last), not model loading. Printed: tokens/s (real
tokens, no padding), the share of computed tokens that were padding, peak RSS, and the largest
per-step loss difference against `trainer` (dropout is on, as in the demo, so expect noise of a
few hundredths; `--no-dropout` makes the runs comparable to ~1e-4).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = ROOT / "bench" / "data" / "demo_train.jsonl"
VARIANTS = ("trainer", "ours", "ours-padded")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def record(spec: str, path: Path) -> None:
    """Write the passing samples of a campaign's train problems (every round, one per distinct
    normalized program and problem) as the benchmark's training set."""
    from engine.store import Store
    from engine.workspace import Workspace

    home, _, cid = spec.rpartition(":")
    store = Store(Workspace.resolve(home).db_path)
    split = {p.task_id: s for p, s in store.problems(int(cid))}
    seen, rows = set(), []
    for s in store.samples(int(cid)):
        key = (s["task_id"], s["norm_hash"])
        if s["status"] == "passed" and split[s["task_id"]] == "train" and key not in seen:
            seen.add(key)
            rows.append({"task_id": s["task_id"], "output": s["output"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} examples from {len({r['task_id'] for r in rows})} problems to {path}")


def load_setup(args: dict, bucket: bool = True):
    """(config, examples) of the benchmark: the demo campaign's settings, the recorded training set."""
    from engine.config import load_config
    from engine.jsonl import read_jsonl
    from engine.problems import load_problems
    from engine.train import TrainExample

    overrides = {"train.epochs": args["epochs"]} if args["epochs"] else {}
    if args["no_dropout"]:
        overrides["train.lora_dropout"] = 0.0
    if not bucket:
        overrides["train.bucket_by_length"] = False
    cfg, _ = load_config(ROOT / "campaigns" / "demo.toml", overrides)
    by_id = {p.task_id: p for p in load_problems(cfg.problems.source)}
    rows = [row for _, row in read_jsonl(Path(args["data"]), "training set")]
    return cfg, [TrainExample(problem=by_id[r["task_id"]], output=r["output"]) for r in rows]


def run_ours(args: dict, bucket: bool) -> dict:
    from engine.train import train_lora

    cfg, examples = load_setup(args, bucket)
    marks: list[float] = []
    losses: list[float] = []

    def should_stop() -> bool:  # called before each step: the first call starts the clock
        if not marks:
            marks.append(time.perf_counter())
        return False

    def on_step(step: int, total: int, loss: float) -> None:
        marks.append(time.perf_counter())
        losses.append(loss)

    with tempfile.TemporaryDirectory() as tmp:
        result = train_lora(cfg, examples, Path(tmp) / "adapter", None, seed=args["seed"],
                            should_stop=should_stop, on_step=on_step)
    return dict(seconds=marks[-1] - marks[0], tokens=result.tokens, padded=result.padded_tokens,
                losses=losses, steps=result.steps, examples=result.examples, rss=peak_rss_mb())


def run_trainer(args: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from engine.models import load_model
    from engine.train import IGNORE, encode_example, plan_batches, round_half_up, seed_everything

    cfg, examples = load_setup(args)
    t = cfg.train
    seed_everything(args["seed"])  # as train_lora does before building the LoRA: the same init
    model, tok = load_model(cfg.model, device="cpu")
    model = get_peft_model(model, LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                             target_modules=t.target_modules, task_type="CAUSAL_LM"))
    encoded = [encode_example(e, cfg.model.prompt_style, tok, t.max_seq_len) for e in examples]
    encoded = [e for e in encoded if any(label != IGNORE for label in e.labels)]
    batches = plan_batches(len(encoded), t.epochs, t.batch_size, args["seed"])
    dataset = [{"input_ids": encoded[i].input_ids, "labels": encoded[i].labels} for b in batches for i in b]
    steps = -(-len(batches) // t.grad_accum)

    class InOrder(Trainer):  # the engine's example order, so that step k sees the same examples
        def _get_train_sampler(self, *a, **k):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    marks: list[float] = []
    losses: list[float] = []
    padded = [0]

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if not marks:
                marks.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            marks.append(time.perf_counter())

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE)

    def collate(features):
        batch = collator(features)
        padded[0] += batch["input_ids"].numel()
        return batch

    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
            learning_rate=t.learning_rate, weight_decay=t.weight_decay, num_train_epochs=1, max_steps=steps,
            lr_scheduler_type="linear", warmup_steps=round_half_up(t.warmup_ratio * steps), optim="adamw_torch",
            logging_steps=1, logging_first_step=True, save_strategy="no", report_to=[], use_cpu=True,
            seed=args["seed"], data_seed=args["seed"], dataloader_num_workers=0, remove_unused_columns=False,
            disable_tqdm=True)
        trainer = InOrder(model=model, args=targs, train_dataset=dataset, data_collator=collate, callbacks=[Clock()])
        trainer.train()
    tokens = sum(len(d["input_ids"]) for d in dataset)
    return dict(seconds=marks[-1] - marks[0], tokens=tokens, padded=padded[0], losses=losses, steps=len(losses),
                examples=len(encoded), rss=peak_rss_mb())


def worker(variant: str, args: dict, out) -> None:
    import torch

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    import transformers

    transformers.logging.set_verbosity_error()
    result = run_trainer(args) if variant == "trainer" else run_ours(args, bucket=variant == "ours")
    out.put(result)


def run_variant(variant: str, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=worker, args=(variant, args, q))
    p.start()
    while True:  # a worker that dies (an exception, the OOM killer) must not leave us waiting forever
        try:
            result = q.get(timeout=5)
            break
        except Exception:
            if not p.is_alive():
                sys.exit(f"the {variant} worker died (exit code {p.exitcode}); its traceback is above")
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA), help="jsonl of {task_id, output} (HumanEval task ids)")
    ap.add_argument("--epochs", type=float, default=0, help="override train.epochs (0 = the demo's)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (rotating the order); medians printed")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per worker (0 = torch's default)")
    ap.add_argument("--no-dropout", action="store_true", help="lora_dropout = 0, so that loss curves match closely")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--record", metavar="WORKSPACE:CAMPAIGN", help="write --data from a campaign's passing samples, then stop")
    args = vars(ap.parse_args())
    if args["record"]:
        record(args["record"], Path(args["data"]))
        return
    variants = args.pop("variants").split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    import torch

    cfg, examples = load_setup(args)
    print(f"{len(examples)} examples ({args['data']}), {cfg.train.epochs:g} epochs, batch {cfg.train.batch_size} x "
          f"accum {cfg.train.grad_accum}, lr {cfg.train.learning_rate:g}, LoRA r={cfg.train.lora_r} "
          f"dropout {cfg.train.lora_dropout:g}, max_seq_len {cfg.train.max_seq_len}; torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args["repeat"]):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            res = run_variant(v, args)
            runs[v].append(res)
            print(f"  run {r + 1}: {v:12s} {res['seconds']:6.1f} s, {res['steps']} steps", flush=True)

    base = runs.get("trainer") or runs[variants[0]]
    base_tps = statistics.median(x["tokens"] / x["seconds"] for x in base)
    print()
    print(f"{'variant':12s} {'steps':>5s} {'seconds':>8s} {'tokens/s':>9s} {'padding':>8s} {'peak RSS':>9s} "
          f"{'x tokens/s':>10s} {'max |dloss|':>11s} {'final loss':>10s}")
    table = {}
    for v in variants:
        xs = runs[v]
        tps = statistics.median(x["tokens"] / x["seconds"] for x in xs)
        secs = statistics.median(x["seconds"] for x in xs)
        pad = 1 - xs[0]["tokens"] / xs[0]["padded"]
        dloss = max(abs(a - b) for a, b in zip(xs[0]["losses"], base[0]["losses"]))
        table[v] = dict(steps=xs[0]["steps"], seconds=secs, tokens_per_s=tps, padding_share=pad,
                        peak_rss_mb=max(x["rss"] for x in xs), ratio=tps / base_tps, max_loss_diff=dloss,
                        losses=xs[0]["losses"])
        print(f"{v:12s} {xs[0]['steps']:5d} {secs:8.1f} {tps:9.0f} {pad:8.1%} {table[v]['peak_rss_mb']:7.0f} MB "
              f"{tps / base_tps:9.2f}x {dloss:11.4f} {xs[0]['losses'][-1]:10.4f}")
    print("\nlosses per step:")
    for v in variants:
        print(f"  {v:12s} " + " ".join(f"{x:.3f}" for x in table[v]["losses"]))
    if args["json"]:
        Path(args["json"]).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
