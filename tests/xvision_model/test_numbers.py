"""Ordinal targets for two-digit decimal tokens (xvision_model.finetune.numbers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xvision_model.finetune.numbers import DecimalTokens, decimal_mask, ordinal_loss
from xvision_model.tokenizer import train_tokenizer

TEXTS = [f"Vigorous vegetation, NDVI 0.{v:02d}. Moisture (NDMI -0.{(v * 7) % 100:02d}) over 10 days." for v in range(100)] * 3


def _table():
    tok = train_tokenizer(TEXTS, vocab_size=400)
    table = DecimalTokens.of(tok)
    assert table is not None
    return tok, table


def test_table_holds_each_two_digit_token_with_its_value():
    tok, table = _table()
    for token_id, value in zip(table.ids.tolist(), table.values.tolist()):
        assert tok.convert_ids_to_tokens(token_id) == f"{int(value):02d}"
        assert table.index[token_id] >= 0 and table.ids[table.index[token_id]] == token_id
    assert table.values.tolist() == sorted(table.values.tolist())
    assert tok.convert_ids_to_tokens(table.point_id) == "."
    word = tok("Vigorous", add_special_tokens=False)["input_ids"][0]
    assert table.index[word] == -1


def test_no_table_without_two_digit_tokens():
    tok = train_tokenizer(["no numbers in these analyses at all."] * 5, vocab_size=300)
    assert DecimalTokens.of(tok) is None


def test_mask_picks_only_decimals_after_the_point():
    tok, table = _table()
    ids = tok("NDVI 0.61 over 10 days", add_special_tokens=False)["input_ids"]
    labels, previous = torch.tensor(ids[1:]), torch.tensor(ids[:-1])
    picked = [tok.convert_ids_to_tokens(i) for i in labels[decimal_mask(table, labels, previous)].tolist()]
    assert picked == ["61"]  # "10" is a number token too, but not after "."


def test_near_misses_cost_less_than_far_ones_and_the_target_peaks_on_the_answer():
    _, table = _table()
    answer = int(table.ids[table.values.tolist().index(61.0)])

    def loss_when_predicting(value: int) -> float:
        logits = torch.zeros(1, len(table.index))
        logits[0, table.ids[table.values.tolist().index(float(value))]] = 8.0
        return float(ordinal_loss(logits, torch.tensor([answer]), table, sigma=1.0))

    assert loss_when_predicting(61) < loss_when_predicting(62) < loss_when_predicting(64) < loss_when_predicting(15)
    # The minimiser is the Gaussian itself: its mode (what greedy decoding picks) is the answer.
    # The Hessian of a softmax cross-entropy has eigenvalues <= 1/2, so plain gradient descent
    # converges for lr < 4 (lr 50 oscillated, and where it stopped depended on rounding).
    logits = torch.zeros(1, len(table.index), requires_grad=True)
    opt = torch.optim.SGD([logits], lr=2.0)
    for _ in range(300):
        opt.zero_grad()
        loss = ordinal_loss(logits, torch.tensor([answer]), table, sigma=1.0)
        loss.backward()
        opt.step()
    gauss = torch.exp(-0.5 * (table.values - 61.0) ** 2)
    target = gauss / gauss.sum()
    entropy = float(-(target * target.clamp_min(1e-30).log()).sum())  # the loss's minimum
    assert loss.item() == pytest.approx(entropy, abs=0.05)
    assert int(logits.argmax()) == answer


def test_a_narrow_gaussian_is_plain_cross_entropy():
    _, table = _table()
    torch.manual_seed(0)
    logits = torch.randn(5, len(table.index))
    labels = table.ids[torch.tensor([0, 3, 10, 50, 99]) % len(table.ids)]
    expected = F.cross_entropy(logits, labels, reduction="sum")
    assert torch.allclose(ordinal_loss(logits, labels, table, sigma=0.05), expected, atol=1e-4)
