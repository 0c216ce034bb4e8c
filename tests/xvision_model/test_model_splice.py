"""The splice of visual tokens into text: layout, masks, labels, and the training forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from indexer.core.errors import InputError
from xvision_model.lm import LoraSettings
from xvision_model.splice import IGNORE_INDEX, splice
from xvision_model.tiny import build_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

PAD, EOS = 0, 2
TEXTS = [
    "La parcelle montre une vigueur élevée (NDVI 0.72).",
    "Humidité faible, sol nu dominant.",
    "Végétation dominante, humidité modérée en juin.",
]


@pytest.fixture()
def embed():
    torch.manual_seed(0)
    return nn.Embedding(20, 8)


def test_layout_masks_labels_for_two_lengths(embed):
    visual = torch.randn(2, 3, 8)
    batch = splice(visual, [[5, 6], [7]], embed, target_ids=[[8], [10, 11, 12]], eos_id=EOS, pad_id=PAD)
    # row 0: pad | v v v | 5 6 | 8 EOS        row 1: v v v | 7 | 10 11 12 EOS
    assert batch.inputs_embeds.shape == (2, 8, 8)
    assert batch.attention_mask.tolist() == [[0, 1, 1, 1, 1, 1, 1, 1], [1] * 8]
    assert batch.position_ids.tolist() == [[0, 0, 1, 2, 3, 4, 5, 6], list(range(8))]
    ignore = IGNORE_INDEX
    assert batch.labels.tolist() == [
        [ignore] * 6 + [8, EOS],
        [ignore] * 4 + [10, 11, 12, EOS],
    ]
    emb = batch.inputs_embeds
    assert torch.equal(emb[0, 1:4], visual[0]) and torch.equal(emb[1, 0:3], visual[1])
    assert torch.equal(emb[0, 0], embed.weight[PAD])
    assert torch.equal(emb[0, 4:8], embed(torch.tensor([5, 6, 8, EOS])))
    assert torch.equal(emb[1, 3:8], embed(torch.tensor([7, 10, 11, 12, EOS])))


def test_generation_layout_has_no_labels_and_ends_with_the_prompt(embed):
    visual = torch.randn(2, 3, 8)
    batch = splice(visual, [[5, 6, 9], [7]], embed, pad_id=PAD)
    assert batch.labels is None
    assert batch.attention_mask.tolist() == [[1] * 6, [0, 0, 1, 1, 1, 1]]
    assert batch.position_ids.tolist() == [list(range(6)), [0, 0, 0, 1, 2, 3]]
    # Left padding: the last position is every row's last prompt token.
    assert torch.equal(batch.inputs_embeds[:, -1], embed(torch.tensor([9, 7])))


def test_padded_tensors_equal_lists(embed):
    visual = torch.randn(2, 2, 8)
    lists = splice(visual, [[5, 6], [7]], embed, target_ids=[[8, EOS], [10]], eos_id=EOS)
    tensors = splice(
        visual, torch.tensor([[5, 6], [7, PAD]]), embed, target_ids=torch.tensor([[8, EOS], [10, PAD]]), eos_id=EOS,
        prompt_mask=torch.tensor([[1, 1], [1, 0]]), target_mask=torch.tensor([[1, 1], [1, 0]]),
    )
    for field in ("inputs_embeds", "attention_mask", "position_ids", "labels"):
        assert torch.equal(getattr(lists, field), getattr(tensors, field)), field
    # A target that already ends with EOS does not get a second one.
    assert lists.labels[0, -2:].tolist() == [8, EOS] and lists.labels[0, -3] == IGNORE_INDEX


def test_mismatches_are_input_errors(embed):
    with pytest.raises(InputError, match="batch sizes"):
        splice(torch.randn(2, 3, 8), [[1]], embed)
    with pytest.raises(InputError, match="8-d"):
        splice(torch.randn(1, 3, 4), [[1]], embed)


@pytest.fixture(scope="module")
def model():
    return build_tiny_model(
        TEXTS, in_dim=16, num_tokens=4, vocab_size=300, hidden=32, layers=2, heads=4, kv_heads=2,
        intermediate=64, max_positions=128, lora=LoraSettings(r=4, alpha=8, dropout=0.0), seed=0,
    )


def _ids(model, texts):
    return [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_forward_loss_is_on_targets_and_gradients_reach_adapter_and_lora(model):
    model.train()
    prompts = _ids(model, ["Analyse :", "Décris la parcelle en juin :"])
    targets = _ids(model, ["sol nu.", "Humidité faible, sol nu dominant."])
    features = torch.randn(2, 16)
    out = model(features, prompts, targets)
    assert torch.isfinite(out.loss)

    batch = model.splice(features, prompts, targets)
    shifted = batch.labels[:, 1:]
    expected = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), shifted.flatten(), ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, expected, atol=1e-5)
    n_target = sum(len(t) + 1 for t in targets)  # + EOS
    assert int((shifted != IGNORE_INDEX).sum()) == n_target

    model.zero_grad()
    out.loss.backward()
    for name, param in model.adapter.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    lora = {n: p for n, p in model.lm.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad and p.grad is not None for p in lora.values())
    # lora_B starts at zero, so only it gets a non-zero gradient on the first step.
    assert any(p.grad.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)
    frozen = [(n, p) for n, p in model.lm.named_parameters() if "lora_" not in n]
    assert frozen and all(not p.requires_grad and p.grad is None for _, p in frozen)
    model.zero_grad()


def test_a_row_gives_the_same_logits_alone_or_padded_in_a_batch(model):
    model.eval()
    prompts = _ids(model, ["Analyse :", "Décris la parcelle en juin, humidité :"])
    features = torch.randn(2, 16)
    with torch.no_grad():
        batched = model(features, prompts).logits[:, -1]
        alone = torch.cat([model(features[i:i + 1], prompts[i:i + 1]).logits[:, -1] for i in range(2)])
    assert torch.allclose(batched, alone, atol=1e-5)
