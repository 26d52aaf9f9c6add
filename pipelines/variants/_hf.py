"""Safe, offline loading of Hugging Face model folders, and their hashes.

Only this package imports torch and transformers, and only inside functions.
Every loader checks the folder first and raises :class:`ModelError` with a
message naming the folder, what was expected and what was found, instead of
letting a deep transformers traceback surface.

No remote code: every ``from_pretrained`` / ``from_config`` passes
``trust_remote_code=False``, and a folder whose config names custom code
(``auto_map`` in ``config.json``, ``tokenizer_config.json``, ...) is refused
before transformers sees it, so transformers never asks on the terminal whether
to run the folder's code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path
from typing import Any, Callable

from pipelines.core.artifacts import hash_files
from pipelines.errors import ModelError

__all__ = [
    "offline",
    "passive_omp_wait",
    "set_threads",
    "check_model_dir",
    "model_identity",
    "load_tokenizer",
    "load_encoder",
    "load_sequence_classifier",
    "load_causal_lm",
    "load_config",
    "PICKLE_SUFFIXES",
    "refuse_custom_code",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model")

MSG_NO_DIR = "model folder {path} does not exist (configured as `{field}`)."
MSG_NO_CONFIG = "model folder {path}: config.json is missing. Found: {found}."
MSG_NO_WEIGHTS = (
    "model folder {path}: no weights file. Expected model.safetensors (or a sharded "
    "model.safetensors.index.json with its shards). Found: {found}."
)
MSG_MISSING_SHARDS = "model folder {path}: model.safetensors.index.json names shards that are missing: {missing}."
MSG_PICKLE = (
    "model folder {path}: only pickle weights ({files}) and no safetensors. Pickle files can run code "
    "when loaded; set `{field}: true` in the config to allow them, or convert the model to safetensors."
)
MSG_NO_TOKENIZER = "model folder {path}: no tokenizer files. Expected one of {expected}. Found: {found}."
MSG_LABELS = (
    "model folder {path}: a classifier with {found} labels; the audit needs a binary classifier "
    "(2 labels, index {positive} = positive). Set `variants.finetuned.train: true` to fine-tune a fresh head."
)
MSG_LOAD = "model folder {path}: transformers could not load it: {error}"
MSG_CUSTOM_CODE = ("model folder {path}: {file} has `auto_map` ({classes}), so loading it would run Python code "
                   "from the folder; custom code is refused. Use a model whose architecture transformers ships.")
#: Files in which transformers looks for ``auto_map`` (classes to import from the folder's own code).
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
                "feature_extractor_config.json", "image_processor_config.json")


def offline() -> None:
    """No hub access: set the offline switches before transformers is imported (and :func:`passive_omp_wait`)."""
    passive_omp_wait()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:  # transformers' own "Loading weights" bars would interleave with the stage's progress bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def passive_omp_wait() -> bool:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions; True if it takes effect.

    OpenMP's default is to spin for a while at every barrier. On a machine
    whose cores are shared with other jobs that is ruinous: when one of the
    two threads is descheduled, the other burns its time slice spinning, and a
    two-thread forward pass was measured 4x slower in wall time (and 5x in CPU
    time) than with ``OMP_WAIT_POLICY=PASSIVE``, which costs a few percent on
    an idle machine. OpenMP reads the variable once, when torch is first
    imported, so this only works before that; a value the user set is kept.
    """
    import sys

    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _listing(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir())
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} files)" if len(names) > 20 else "")
    return shown or "nothing"


def refuse_custom_code(path: Path) -> None:
    """Raise :class:`ModelError` when a config file of the folder names custom code (``auto_map``)."""
    path = Path(path)
    for name in CODE_CONFIGS:
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model folder {path}: {name} is not readable JSON ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}).") from exc
        if isinstance(data, dict) and data.get("auto_map"):
            auto_map = data["auto_map"]
            classes = ", ".join(sorted(map(str, auto_map)))[:200] if isinstance(auto_map, dict) else "custom classes"
            raise ModelError(MSG_CUSTOM_CODE.format(path=path, file=name, classes=classes))


def check_model_dir(path: Path, *, field: str, allow_pickle: bool, need_tokenizer: bool = True) -> dict[str, Any]:
    """Check that ``path`` is a complete HF model folder without custom code; return what was found.

    Returns ``{"safetensors": bool, "weights": [file names]}``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelError(MSG_NO_DIR.format(path=path, field=field))
    if not (path / "config.json").is_file():
        raise ModelError(MSG_NO_CONFIG.format(path=path, found=_listing(path)))
    refuse_custom_code(path)
    safetensors = sorted(p.name for p in path.glob("*.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError) as exc:
            raise ModelError(f"model folder {path}: model.safetensors.index.json is not a valid index ({exc}).") from exc
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise ModelError(MSG_MISSING_SHARDS.format(path=path, missing=", ".join(missing)))
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file()
                     and p.name not in ("training_args.bin",))
    if not safetensors:
        if pickles:
            if not allow_pickle:
                raise ModelError(MSG_PICKLE.format(path=path, files=", ".join(pickles),
                                                   field=field.rsplit(".", 1)[0] + ".allow_pickle"))
        else:
            raise ModelError(MSG_NO_WEIGHTS.format(path=path, found=_listing(path)))
    if need_tokenizer and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(MSG_NO_TOKENIZER.format(path=path, expected=", ".join(TOKENIZER_FILES), found=_listing(path)))
    return {"safetensors": bool(safetensors), "weights": safetensors or pickles}


def model_identity(path: Path, *, kind: str) -> dict[str, Any]:
    """Identity of a model folder for the manifest: hashes of the weights and of the config/tokenizer."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    weights = [p for p in files if p.suffix in (".safetensors", ".gguf", *PICKLE_SUFFIXES)]
    config = [p for p in files if p not in weights and p.suffix in (".json", ".txt", ".model", ".jinja")]
    return {
        "kind": kind,
        "model_dir": str(path),
        "weights_sha256": hash_files(weights, root=path),
        "config_sha256": hash_files(config, root=path),
        "weights_files": sorted(str(p.relative_to(path)) for p in weights),
    }


def load_config(path: Path, *, field: str, allow_pickle: bool):
    """The checked folder's transformers config (no weights are read)."""
    check_model_dir(path, field=field, allow_pickle=allow_pickle)
    offline()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ModelError(MSG_LOAD.format(path=path, error=f"{type(exc).__name__}: {exc}")) from exc


def folder_path(path: Path, *, field: str, allow_pickle: bool, where: str, precision: str, engine: str,
                supports: Callable[[Any], tuple[bool, str]]) -> dict[str, Any]:
    """The path record (:func:`._precision.choose_path`) of the model folder ``path``: its config read, no weights.

    ``supports`` is the packed engine's check of that config (``_bert.supports``, ``_llama.supports``).
    """
    from pipelines.variants._precision import choose_path

    cfg = load_config(path, field=field, allow_pickle=allow_pickle)
    return choose_path(where=where, precision=precision, engine=engine, fits=supports(cfg))


def load_tokenizer(path: Path, **kwargs: Any):
    """The folder's tokenizer (offline, no custom code)."""
    refuse_custom_code(path)
    offline()
    from transformers import AutoTokenizer

    kwargs.pop("trust_remote_code", None)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False, **kwargs)
    except Exception as exc:  # transformers raises many kinds
        raise ModelError(MSG_LOAD.format(path=path, error=f"{type(exc).__name__}: {exc}")) from exc


def _load(cls_name: str, path: Path, *, found: dict[str, Any], **kwargs: Any):
    offline()
    import transformers

    from transformers.utils import logging as hf_logging

    cls = getattr(transformers, cls_name)
    kwargs.pop("trust_remote_code", None)
    level = hf_logging.get_verbosity()
    if kwargs.get("num_labels") is not None:
        # a fresh head is expected to be missing from a base encoder: no "LOAD REPORT" table for it
        hf_logging.set_verbosity_error()
    try:
        return cls.from_pretrained(str(path), local_files_only=True, use_safetensors=found["safetensors"],
                                   trust_remote_code=False, **kwargs)
    except Exception as exc:
        raise ModelError(MSG_LOAD.format(path=path, error=f"{type(exc).__name__}: {exc}")) from exc
    finally:
        hf_logging.set_verbosity(level)


def load_encoder(path: Path, *, field: str, allow_pickle: bool):
    """A bare encoder (``AutoModel``) and its tokenizer, e.g. for sentence embeddings."""
    found = check_model_dir(path, field=field, allow_pickle=allow_pickle)
    model = _load("AutoModel", path, found=found)
    model.eval()
    return model, load_tokenizer(path)


def load_sequence_classifier(path: Path, *, field: str, allow_pickle: bool, new_head: bool, positive_index: int = 1):
    """A 2-label sequence classifier and its tokenizer.

    ``new_head``: the folder is a base encoder; a fresh 2-label head is
    initialised (for fine-tuning). Otherwise the folder must already be a
    classifier with exactly 2 labels.
    """
    found = check_model_dir(path, field=field, allow_pickle=allow_pickle)
    if not new_head:
        cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        archs = cfg.get("architectures") or []
        # transformers omits id2label from config.json when there are 2 labels (its default)
        n_labels = cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ModelError(
                f"model folder {path}: not a sequence-classification model (architectures {archs}). "
                "Set `variants.finetuned.train: true` to fine-tune it, or point at a classifier folder."
            )
        if n_labels != 2 or positive_index > 1:
            raise ModelError(MSG_LABELS.format(path=path, found=n_labels, positive=positive_index))
        model = _load("AutoModelForSequenceClassification", path, found=found)
    else:
        model = _load("AutoModelForSequenceClassification", path, found=found, num_labels=2)
    if model.config.num_labels != 2:
        raise ModelError(MSG_LABELS.format(path=path, found=model.config.num_labels, positive=positive_index))
    model.eval()
    return model, load_tokenizer(path)


def load_causal_lm(path: Path, *, field: str, allow_pickle: bool):
    """A causal LM (safetensors folder) and its tokenizer, which must have a chat template."""
    found = check_model_dir(path, field=field, allow_pickle=allow_pickle)
    import torch

    model = _load("AutoModelForCausalLM", path, found=found, dtype=torch.float32)
    model.eval()
    tokenizer = load_tokenizer(path)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"model folder {path}: the tokenizer has no chat template; the RAG prompt needs one.")
    return model, tokenizer


@contextlib.contextmanager
def _gguf_parsed_once():
    """Within the block, gguf's file reader and tensor-name map are built once per file and architecture.

    transformers parses a GGUF file three times for one model (config,
    tokenizer, weights: ~5 s each for SmolLM2's 49,152-token vocabulary) and
    rebuilds the tensor-name map for each of ~400 modules (~7 s). Both are
    read-only, so the block hands out the first one built; the converted
    weights are the same (``tests/variants/test_hf.py``).
    """
    import gguf

    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[Any, Any] = {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = real_reader(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map


def convert_gguf(src_dir: Path, gguf_file: str, dest: Path) -> None:
    """Dequantize a GGUF checkpoint once and save it as an fp32 safetensors folder at ``dest``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the
    weights are copied into a fresh model built from the config without its
    ``quantization_config``.
    """
    gguf_path = Path(src_dir) / gguf_file
    if not gguf_path.is_file():
        found = _listing(Path(src_dir)) if Path(src_dir).is_dir() else "no such folder"
        raise ModelError(f"GGUF file {gguf_path} does not exist (`variants.rag.generator.gguf_file`). Found: {found}.")
    refuse_custom_code(Path(src_dir))
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _gguf_parsed_once():
            tok = AutoTokenizer.from_pretrained(str(src_dir), gguf_file=gguf_file, local_files_only=True,
                                                trust_remote_code=False)
            loaded = AutoModelForCausalLM.from_pretrained(str(src_dir), gguf_file=gguf_file, dtype=torch.float32,
                                                          local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ModelError(MSG_LOAD.format(path=gguf_path, error=f"{type(exc).__name__}: {exc}")) from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
