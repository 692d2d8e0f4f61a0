"""The entropy-maximization training loss of Meta-OoD (docs/METHOD.md §2), without a dense target.

The reference built the per-pixel target vector y (in-distribution class k: (1 - alpha) e_k,
OoD pixel: alpha / C on every class, void: 0) as a dense float64 (B, C, H, W) tensor and took
the mean of y * -log p over all B*C*H*W entries. That value is

    L = [(1 - alpha) sum_in CE + alpha sum_out mean_c(-log p_c)] / (B*C*H*W),

which needs one log-softmax, the class index of in-distribution pixels and two weights per pixel.
"""
import torch

VOID_ALIAS = -1  # the reference ignored both 255 and -1 (Cityscapes' ignore_in_eval ids)


def entropy_maximization_loss(logits, target, pareto_alpha, num_classes=19, ood_id=254, void_id=255):
    """The Meta-OoD loss L (a 0-d tensor) of `logits` (B, C, H, W) against `target` (B, H, W).

    target holds train ids 0..C-1, `ood_id` for OoD-proxy pixels and `void_id` or -1 for ignored
    pixels; any other value raises ValueError. `target` is left unchanged and may live on another
    device than `logits`. Computed in float32 (float64 logits stay float64), also under bf16
    autocast. The backward pass reuses the saved log-probabilities as the gradient buffer, so the
    graph can be backpropagated only once.
    """
    _check_inputs(logits, target, num_classes)
    x = logits if logits.dtype == torch.float64 else logits.float()
    target = target.to(x.device)
    classes, w_in, w_out = _pixel_weights(target, pareto_alpha, num_classes, ood_id, void_id, x.dtype)
    return _EntropyMaximization.apply(x, classes, w_in, w_out)


def _check_inputs(logits, target, num_classes):
    if logits.dim() != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"entropy_maximization_loss: logits must be (B, {num_classes}, H, W), "
                         f"got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"entropy_maximization_loss: target must be (B, H, W) = "
                         f"{tuple(logits.shape[:1] + logits.shape[2:])}, got {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"entropy_maximization_loss: target must hold integer ids, got {target.dtype}")


def _pixel_weights(target, alpha, num_classes, ood_id, void_id, dtype):
    """Per pixel: class index (0 where not in-distribution), CE weight and OoD weight.

    Each is looked up in a table over the ids -1..max id (one cheap pass over the label map
    per output, instead of a dozen masks of it).
    """
    ids = torch.arange(VOID_ALIAS, max(num_classes, ood_id, void_id) + 1, device=target.device)
    is_in = (ids >= 0) & (ids < num_classes)
    is_ood = ids == ood_id
    valid = is_in | is_ood | (ids == void_id) | (ids == VOID_ALIAS)
    index = target.long() - VOID_ALIAS  # the table row of each pixel
    lo, hi = torch.aminmax(index) if index.numel() else (0, 0)
    if lo < 0 or hi >= len(ids) or not valid.take(index).all():
        values = torch.unique(target[~torch.isin(target, ids[valid])]).tolist()
        raise ValueError(f"entropy_maximization_loss: target holds {values[:10]}; expected train ids "
                         f"0..{num_classes - 1}, {ood_id} (OoD) or {void_id} / {VOID_ALIAS} (void)")
    classes = torch.where(is_in, ids, 0).take(index)
    return classes, (is_in.to(dtype) * (1.0 - alpha)).take(index), (is_ood.to(dtype) * alpha).take(index)


class _EntropyMaximization(torch.autograd.Function):
    """sum_pixels [w_in * CE + w_out * mean_c(-log p_c)] / (B*C*H*W) with a hand-written backward.

    d L / d x_c = (w_pixel * p_c - y_c) / (B*C*H*W), w_pixel = sum_c y_c = w_in + w_out. Autograd
    would keep log p and build two more tensors of the logits' size; here log p turns into the
    gradient in place, so nothing of that size exists beyond the logits and their gradient.
    """

    @staticmethod
    def forward(ctx, x, classes, w_in, w_out):
        log_p = torch.log_softmax(x, 1)
        weighted_nll = log_p.gather(1, classes[:, None]).squeeze(1).mul_(w_in)
        weighted_ood = log_p.mean(1).mul_(w_out)
        ctx.save_for_backward(log_p, classes, w_in, w_out)
        return -(weighted_nll.sum() + weighted_ood.sum()) / x.numel()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        log_p, classes, w_in, w_out = ctx.saved_tensors
        num_classes = log_p.shape[1]
        scale = grad_loss / log_p.numel()
        grad = log_p.exp_()
        grad.mul_(((w_in + w_out) * scale)[:, None])
        grad.sub_((w_out * (scale / num_classes))[:, None])
        grad.scatter_add_(1, classes[:, None], (w_in * -scale)[:, None])
        return grad, None, None, None
