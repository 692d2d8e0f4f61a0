"""The entropy-maximization loss against the reference's golden data and its dense objective."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.loss import entropy_maximization_loss

C = 19


def golden_cases(golden_dir):
    paths = sorted(golden_dir.glob("loss_*.npz"))
    assert len(paths) == 3, f"expected 3 golden loss cases in {golden_dir}"
    return [np.load(p) for p in paths]


def dense_objective(logits, target, alpha):
    """The reference's objective: mean over B*C*H*W of y * -log softmax, y built densely."""
    y = torch.zeros(logits.shape, dtype=torch.float64)
    for k in range(C):
        y[:, k][target == k] = 1 - alpha
    y.permute(1, 0, 2, 3)[:, target == 254] = alpha / C
    return torch.mean(y * -torch.log_softmax(logits, 1))


def random_case(seed, shape=(2, 5, 7), ood=True):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn((shape[0], C) + shape[1:], generator=gen, dtype=torch.float64) * 4
    target = torch.randint(0, C, shape, generator=gen)
    pick = torch.rand(shape, generator=gen)
    target[pick < 0.15] = 255
    target[(pick >= 0.15) & (pick < 0.2)] = -1
    if ood:
        target[pick > 0.7] = 254
    return logits, target


def loss_and_grad(logits, target, alpha, loss=entropy_maximization_loss):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target, alpha)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("case", range(3))
def test_golden_loss_gradient_and_untouched_target(golden_dir, case):
    g = golden_cases(golden_dir)[case]
    alpha = float(g["pareto_alpha"])
    target = torch.from_numpy(g["target"].copy())
    value, grad = loss_and_grad(torch.from_numpy(g["logits"]), target, alpha)
    assert value.dtype == torch.float32
    assert abs(value.item() / float(g["loss"]) - 1) <= 1e-6
    np.testing.assert_allclose(grad.numpy(), g["grad_logits"], rtol=1e-5, atol=1e-11)
    np.testing.assert_array_equal(target.numpy(), g["target"])

    value64 = entropy_maximization_loss(torch.from_numpy(g["logits"]).double(), target, alpha)
    assert value64.dtype == torch.float64
    assert abs(value64.item() / float(g["loss_f64_logits"]) - 1) <= 1e-6


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_equals_dense_objective_and_its_autograd(alpha, seed):
    logits, target = random_case(seed)
    value, grad = loss_and_grad(logits, target, alpha)
    dense_value, dense_grad = loss_and_grad(logits, target, alpha, loss=dense_objective)
    assert torch.allclose(value, dense_value, rtol=1e-12, atol=0)
    assert torch.allclose(grad, dense_grad, rtol=1e-10, atol=1e-15)


def test_alpha_zero_is_cross_entropy_on_in_distribution_pixels():
    logits, target = random_case(3)
    value = entropy_maximization_loss(logits, target, 0.0)
    ce_target = torch.where((target == 254) | (target == -1), 255, target)
    ce = F.cross_entropy(logits, ce_target, reduction="sum", ignore_index=255) / logits.numel()
    assert torch.allclose(value, ce, rtol=1e-12, atol=0)


def test_alpha_one_without_ood_pixels_is_exactly_zero():
    logits, target = random_case(4, ood=False)
    value, grad = loss_and_grad(logits.float(), target, 1.0)
    assert value.item() == 0.0
    assert torch.count_nonzero(grad) == 0


def test_uint8_target_and_custom_ids_give_the_same_loss():
    logits, target = random_case(5)
    target[target == -1] = 255
    expected = entropy_maximization_loss(logits, target, 0.7)
    assert torch.equal(entropy_maximization_loss(logits, target.to(torch.uint8), 0.7), expected)
    relabelled = torch.where(target == 254, 100, torch.where(target == 255, 200, target))
    assert torch.equal(entropy_maximization_loss(logits, relabelled, 0.7, ood_id=100, void_id=200), expected)


def test_bf16_autocast_computes_in_float32():
    logits, target = random_case(6)
    x = logits.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = entropy_maximization_loss(x, target, 0.9)
    value.backward()
    expected, expected_grad = loss_and_grad(logits.to(torch.bfloat16).float(), target, 0.9)
    assert value.dtype == torch.float32 and torch.equal(value.detach(), expected)
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad, expected_grad.to(torch.bfloat16))


@pytest.mark.parametrize("bad", [19, 253, -2, 300])
def test_bad_target_values_are_named(bad):
    logits, target = random_case(7)
    target[0, 0, 0] = bad
    with pytest.raises(ValueError, match=rf"target holds \[{bad}\]; expected train ids 0\.\.18, 254"):
        entropy_maximization_loss(logits, target, 0.5)


def test_bad_shapes_and_dtypes_are_explained():
    logits, target = random_case(8)
    with pytest.raises(ValueError, match=r"logits must be \(B, 19, H, W\)"):
        entropy_maximization_loss(logits[:, :18], target, 0.5)
    with pytest.raises(ValueError, match=r"target must be \(B, H, W\) = \(2, 5, 7\)"):
        entropy_maximization_loss(logits, target[:, :4], 0.5)
    with pytest.raises(TypeError, match="target must hold integer ids"):
        entropy_maximization_loss(logits, target.float(), 0.5)


def test_second_backward_through_the_same_graph_is_refused():
    logits, target = random_case(9)
    x = logits.requires_grad_(True)
    value = entropy_maximization_loss(x, target, 0.9)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        value.backward()
