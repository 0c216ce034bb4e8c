"""Generation (batched, streamed, merged) and the model directory round trip."""

from __future__ import annotations

import copy
import json
import re
import threading

import pytest
import torch
from transformers import TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

from indexer.core.errors import WeightsError
from xvision_model.artifacts import load_model, save_model
from xvision_model.lm import LoraSettings, load_base_lm
from xvision_model.tiny import build_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

TEXTS = [
    "La parcelle montre une vigueur élevée (NDVI 0.72).",
    "Humidité faible, sol nu dominant.",
    "Végétation dominante, humidité modérée en juin.",
]
PROMPTS = ["Analyse :", "Décris la parcelle BE-017 en juin :", "sol"]
IN_DIM = 16


def _build():
    model = build_tiny_model(
        TEXTS, in_dim=IN_DIM, num_tokens=4, vocab_size=300, hidden=32, layers=2, heads=4,
        kv_heads=2, intermediate=64, max_positions=128, lora=LoraSettings(r=4, alpha=8), seed=0,
    )
    # At the default init scale (0.02) a 32-wide model emits one token forever; larger weights
    # give varied greedy outputs, and a non-zero lora_B makes LoRA change them (merge test).
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return _build()


def _ids(model, texts=PROMPTS):
    return [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _features(n=len(PROMPTS)):
    torch.manual_seed(2)
    return torch.randn(n, IN_DIM)


def test_batched_greedy_equals_per_example(model):
    m = model
    features, prompts = _features(), _ids(m)
    free = m.generate(features, prompts, max_new_tokens=12, eos_token_id=-1)
    assert [len(r) for r in free] == [12] * 3  # only new tokens, prompt excluded
    assert len({tuple(r) for r in free}) == 3
    # Stop on a token that row 0 emits mid-way: rows then finish at different steps.
    eos = free[0][5]
    batched = m.generate(features, prompts, max_new_tokens=12, eos_token_id=eos)
    single = [m.generate(features[i:i + 1], prompts[i:i + 1], max_new_tokens=12, eos_token_id=eos)[0] for i in range(3)]
    assert batched == single
    for full, cut in zip(free, batched):
        assert cut == (full[: full.index(eos)] if eos in full else full)
    assert len(batched[0]) <= 5


class Collect(BaseStreamer):
    def __init__(self):
        self.chunks = []

    def put(self, value):
        self.chunks.append(value.flatten().tolist())

    def end(self):
        self.chunks.append(None)


def test_streamed_tokens_equal_greedy_output(model):
    features, prompts = _features(1), _ids(model)[1:2]
    expected = model.generate(features, prompts, max_new_tokens=10, eos_token_id=-1)[0]
    collect = Collect()
    assert model.generate(features, prompts, max_new_tokens=10, eos_token_id=-1, streamer=collect)[0] == expected
    assert collect.chunks[0] == [] and collect.chunks[-1] is None  # no prompt ids with inputs_embeds
    assert [t for chunk in collect.chunks[1:-1] for t in chunk] == expected

    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    worker = threading.Thread(
        target=model.generate, args=(features, prompts),
        kwargs={"max_new_tokens": 10, "eos_token_id": -1, "streamer": streamer},
    )
    worker.start()
    text = "".join(streamer)
    worker.join()
    assert text == model.tokenizer.decode(expected, skip_special_tokens=True)


def test_merged_and_unmerged_agree(model):
    features, prompts = _features(), _ids(model)
    merged = copy.deepcopy(model).merge_lora()
    assert not merged.is_lora and not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        a, b = model(features, prompts).logits, merged(features, prompts).logits
        no_lora = copy.deepcopy(model)
        with no_lora.lm.disable_adapter():
            c = no_lora(features, prompts).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)  # LoRA is not a no-op here, so the check means something
    kwargs = {"max_new_tokens": 10, "eos_token_id": -1}
    assert model.generate(features, prompts, **kwargs) == merged.generate(features, prompts, **kwargs)


def test_sampling_is_reproducible_with_a_seed(model):
    features, prompts = _features(), _ids(model)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(model.generate(features, prompts, max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.9))
    assert runs[0] == runs[1] and all(len(r) <= 8 for r in runs[0])
    # Sampling really samples: another seed draws other tokens, and the draw is not the greedy path.
    torch.manual_seed(8)
    other = model.generate(features, prompts, max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.9)
    assert other != runs[0]
    assert runs[0] != model.generate(features, prompts, max_new_tokens=8)


def test_generate_text_decodes(model):
    texts = model.generate_text(_features(2), PROMPTS[:2], max_new_tokens=6, eos_token_id=-1)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)


def _files(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _assert_same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.allclose(sa[key], sb[key]), key


TINY_FILES = [
    "adapter.safetensors", "adapter_config.json",
    "base/config.json", "base/generation_config.json", "base/model.safetensors",
    "lora/README.md", "lora/adapter_config.json", "lora/adapter_model.safetensors",
    "model_card.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
]


def test_model_directory_round_trip(model, tmp_path, capfd):
    save_model(model, tmp_path / "m", encoder_id="spectral-v2", profile="tiny")
    # No transformers progress bar ("Writing model shards"): `xvision train --quiet` prints nothing.
    assert capfd.readouterr().err == ""
    assert _files(tmp_path / "m") == TINY_FILES
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["encoder"] == "spectral-v2" and card["profile"] == "tiny" and card["base_model"] == "base"
    assert card["adapter"] == model.adapter.config.to_dict()
    assert card["lm"]["hidden_size"] == 32 and card["lora"]["r"] == 4 and card["created"]

    loaded = load_model(tmp_path / "m", dtype="float32")
    assert loaded.is_lora and not loaded.training
    _assert_same_tensors(model.adapter, loaded.adapter)
    _assert_same_tensors(model.lm, loaded.lm)
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    assert (loaded.pad_token_id, loaded.eos_token_id) == (model.pad_token_id, model.eos_token_id)
    features, prompts = _features(), _ids(model)
    assert loaded.generate(features, prompts, max_new_tokens=8) == model.generate(features, prompts, max_new_tokens=8)

    merged = load_model(tmp_path / "m", dtype="float32", merge=True)
    assert not merged.is_lora
    with torch.no_grad():
        assert torch.allclose(merged(features, prompts).logits, model(features, prompts).logits, atol=1e-4)


def test_full_profile_records_the_base_path(model, tmp_path):
    # Stand-in for a downloaded Qwen2: the tiny base saved on its own.
    base = copy.deepcopy(model.lm).unload()
    base.save_pretrained(tmp_path / "qwen", safe_serialization=True)
    save_model(model, tmp_path / "m", encoder_id="croma-large", profile="full", base_model=str(tmp_path / "qwen"))
    assert _files(tmp_path / "m") == [f for f in TINY_FILES if not f.startswith("base/")]
    assert json.loads((tmp_path / "m" / "model_card.json").read_text())["base_model"] == str(tmp_path / "qwen")
    _assert_same_tensors(model.lm, load_model(tmp_path / "m", dtype="float32").lm)

    (tmp_path / "qwen" / "model.safetensors").rename(tmp_path / "qwen" / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="pytorch_model.bin"):
        load_model(tmp_path / "m")
    for path in (tmp_path / "qwen").iterdir():
        path.unlink()
    (tmp_path / "qwen").rmdir()
    with pytest.raises(WeightsError, match=re.escape(str(tmp_path / "qwen"))):
        load_model(tmp_path / "m")


def test_missing_lm_names_the_path_or_id(tmp_path):
    missing = tmp_path / "nowhere" / "qwen2"
    with pytest.raises(WeightsError, match=re.escape(str(missing))):
        load_base_lm(missing)
    with pytest.raises(WeightsError, match="xvision-test/not-a-cached-model.*hf download"):
        load_base_lm("xvision-test/not-a-cached-model")


def test_pickles_in_a_model_directory_are_refused(model, tmp_path):
    save_model(model, tmp_path / "m", encoder_id="spectral-v2")
    (tmp_path / "m" / "lora" / "adapter_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(WeightsError, match="adapter_model.bin"):
        load_model(tmp_path / "m")
