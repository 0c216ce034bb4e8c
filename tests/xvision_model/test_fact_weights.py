"""Loss weight on the tokens that state a fact (StageSettings.fact_weight, finetune.loss)."""

from __future__ import annotations

import random

import pytest
import torch

from indexer.analysis import fact_spans, write_analysis
from indexer.core.errors import InputError
from xvision_model.finetune.numbers import DecimalTokens
from xvision_model.finetune.profiles import StageSettings
from xvision_model.finetune.loss import Objective, fact_weights, token_loss
from xvision_model.finetune.tokens import Encoded, tokenize_targets
from xvision_model.splice import splice
from xvision_model.tiny import build_tiny_model


def _texts(n: int = 120) -> list[str]:
    # Values from a short list recur often enough for the BPE to learn two-digit decimal tokens,
    # so the ordinal-decimal path of the loss is exercised too.
    rng = random.Random(3)
    grid = (0.05, 0.12, 0.25, 0.31, 0.48, 0.52, 0.67)
    stats = [{name: rng.choice(grid) for name in ("ndvi_mean", "ndmi_mean", "savi_mean", "evi_mean", "ndre_mean",
                                                   "ndvi_std")} | {"ndwi_mean": -rng.choice(grid), "valid_fraction": 0.9}
             for _ in range(n)]
    return [write_analysis(s, seed=i, lang="en" if i % 3 else "fr") for i, s in enumerate(stats)]


@pytest.fixture(scope="module")
def model_and_data():
    texts = _texts()
    model = build_tiny_model(texts, in_dim=6, num_tokens=2, vocab_size=400, hidden=32, layers=1, heads=2,
                             kv_heads=1, intermediate=48, seed=0)
    targets, facts = tokenize_targets(model.tokenizer, texts[:6], None, marks=True)
    prompt = model.tokenizer("Describe.", add_special_tokens=False)["input_ids"]
    data = Encoded(torch.randn(6, 6), [prompt] * 6, targets, torch.zeros(6, 1), facts=facts)
    return model, data, texts[:6]


def test_marked_tokens_are_the_fact_spans(model_and_data):
    model, data, texts = model_and_data
    tok = model.tokenizer
    for text, row, marks in zip(texts, data.targets, data.facts):
        assert len(marks) == len(row)
        facts = "".join(tok.decode([t]) for t, m in zip(row, marks) if m)
        for a, b in fact_spans(text):  # every fact's characters are in marked tokens, in order
            assert text[a:b].replace(" ", "") in facts.replace(" ", "")
        # Every digit outside the marked tokens is the "2" of "Sentinel-2".
        phrasing = "".join("#" if m else tok.decode([t]) for t, m in zip(row, marks))
        assert not any(ch.isdigit() for ch in phrasing.replace("Sentinel-2", "")), phrasing


def test_weights_line_up_with_the_labels_of_a_spliced_batch(model_and_data):
    model, data, _ = model_and_data
    embed = model.lm.get_input_embeddings()
    idx = [0, 3, 5]
    batch = splice(torch.zeros(3, 2, embed.embedding_dim), [data.prompts[i] for i in idx], embed,
                   target_ids=[data.targets[i] for i in idx], eos_id=model.eos_token_id, pad_id=model.pad_token_id)
    weights = fact_weights(data, idx, batch.labels, StageSettings(epochs=1, lr=1e-3, fact_weight=4.0))
    for r, i in enumerate(idx):
        wanted = [t for t, m in zip(data.targets[i], data.facts[i]) if m]
        assert batch.labels[r][weights[r] == 4.0].tolist() == wanted
    assert (weights[batch.labels == -100] == 1.0).all()  # padding, visual, prompt and EOS untouched
    assert (fact_weights(data, idx, batch.labels, None) == 1.0).all()  # validation: plain


def test_loss_is_the_phrasing_part_plus_weight_times_the_fact_part(model_and_data):
    model, data, _ = model_and_data
    ctx = Objective(device=torch.device("cpu"), decimals=DecimalTokens.of(model.tokenizer))
    idx = list(range(6))
    assert ctx.decimals is not None
    model.eval()

    def loss(weight: float, sigma: float = 1.0) -> float:
        settings = StageSettings(epochs=1, lr=1e-3, fact_weight=weight, decimal_sigma=sigma)
        with torch.no_grad():
            return float(token_loss(model, data, idx, visual=True, objective=ctx, settings=settings)[0])

    for sigma in (0.0, 1.0):  # plain cross-entropy and ordinal decimals
        one, three, five = loss(1.0, sigma), loss(3.0, sigma), loss(5.0, sigma)
        fact_part = (three - one) / 2
        assert fact_part > 0
        assert five == pytest.approx(one + 4 * fact_part, rel=1e-5)


def test_fact_weight_must_be_positive():
    with pytest.raises(InputError, match="fact_weight"):
        StageSettings(epochs=1, lr=1e-3, fact_weight=0.0)


def test_loss_over_the_target_span_equals_cross_entropy_over_every_position(model_and_data):
    """token_loss projects only the trailing positions that hold targets onto the vocabulary: the
    summed cross-entropy must be the one computed from the logits of every position."""
    model, data, _ = model_and_data
    ctx = Objective(device=torch.device("cpu"))
    idx = [0, 2, 4, 5]  # targets of different lengths: shorter rows are padded on the left
    assert len({len(data.targets[i]) for i in idx}) > 1
    model.eval()
    with torch.no_grad():
        loss, count, _ = token_loss(model, data, idx, visual=True, objective=ctx)
        batch = model.splice(data.features[idx], [data.prompts[i] for i in idx], [data.targets[i] for i in idx])
        logits = model.run(batch).logits  # every position
        labels = batch.labels[:, 1:]
        keep = labels != -100
        full = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[keep], reduction="sum")
    assert count == int(keep.sum()) == sum(len(data.targets[i]) + 1 for i in idx)
    assert float(loss) == pytest.approx(float(full), rel=1e-6)
