"""The multi-label losses of fine-tuning: BCE, focal and asymmetric weigh easy negatives down."""

import pytest
import torch

from imgcls.core.errors import ConfigError
from imgcls.models.deep.losses import multilabel_loss, resolve_multilabel_imbalance


def test_focal_and_asymmetric_weigh_easy_negatives_less_than_bce():
    logits = torch.tensor([[-4.0, 3.0]])  # an easy negative (p = 0.018) and a likely positive
    target = torch.tensor([[0.0, 1.0]])
    bce = multilabel_loss(logits, target, "bce")
    focal = multilabel_loss(logits, target, "focal")
    asymmetric = multilabel_loss(logits, target, "asymmetric")
    assert focal < bce and asymmetric < bce
    easy = torch.tensor([[-4.0]])  # p = 0.018 < the 0.05 margin: no loss at all
    assert multilabel_loss(easy, torch.zeros(1, 1), "asymmetric") == pytest.approx(0.0, abs=1e-6)
    assert multilabel_loss(easy, torch.zeros(1, 1), "bce") > 0.01
    hard = torch.tensor([[2.0]])  # a confident false positive still costs under every loss
    assert all(multilabel_loss(hard, torch.zeros(1, 1), k) > 0.1 for k in ("bce", "focal", "asymmetric"))


def test_bce_equals_torch_and_positive_weights():
    logits, target = torch.randn(8, 3), (torch.rand(8, 3) > 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum") / 8
    assert multilabel_loss(logits, target, "bce") == pytest.approx(float(expected), rel=1e-5)
    y = torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]])
    weights = resolve_multilabel_imbalance("weights", y).class_weights
    assert weights.tolist() == [1.0, 3.0]  # negatives / positives per label
    with pytest.raises(ConfigError, match="sampler"):
        resolve_multilabel_imbalance("sampler", y)
