"""The segmentation networks by name, and building one with its weights.

Every network maps images (N, 3, H, W) to logits (N, num_classes, H, W) at the input size, in
train and eval mode. The two paper networks have the parameter layout of their published
Cityscapes checkpoints; DeepLabV3+_MobileNetV3 is a small network for CPU demos and tests.
"""
import logging

import torch
import torch.nn as nn

from src.model.checkpoint import (WRAPPER_PREFIX, CheckpointError, load_weights, read_checkpoint,
                                  unwrapped)
from src.model.deepv3 import DeepLabV3PlusWideResNet38
from src.model.dualgcn import DualGCNNetRes50
from src.model.mobilenet import DeepLabV3PlusMobileNetV3

__all__ = ["NETWORKS", "CheckpointError", "build_network", "load_network", "read_checkpoint",
           "unwrapped", "checkpoint_state_dict", "default_device"]

logger = logging.getLogger(__name__)

NETWORKS = {
    "DeepLabV3+_WideResNet38": DeepLabV3PlusWideResNet38,
    "DualGCNNet_res50": DualGCNNetRes50,
    "DeepLabV3+_MobileNetV3": DeepLabV3PlusMobileNetV3,
}
# Key prefix of the published checkpoints (meta-ood saved DeepLabV3+ inside nn.DataParallel).
# Our checkpoints use the same layout, so either implementation reads the other's files.
_SAVED_PREFIX = {"DeepLabV3+_WideResNet38": WRAPPER_PREFIX}


def default_device() -> torch.device:
    """cuda if available, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_network(name: str, num_classes: int) -> nn.Module:
    """A randomly initialized network `name`."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of: {', '.join(NETWORKS)}")
    return NETWORKS[name](num_classes=num_classes)


def load_network(name: str, num_classes: int, ckpt_path=None, device=None, train=False,
                 checkpoint=None) -> nn.Module:
    """Network `name` with the weights of `ckpt_path` (random if None), on `device`, in train or eval mode.

    device None: cuda if available, else cpu. A checkpoint that does not match the network key
    for key and shape for shape raises CheckpointError. `checkpoint`: what read_checkpoint(ckpt_path)
    returned, when the caller has read the file already.
    """
    model = build_network(name, num_classes)
    if ckpt_path is None:
        logger.info("%s: random initialization (no checkpoint)", name)
    else:
        load_weights(model, ckpt_path, checkpoint)
    return model.to(default_device() if device is None else device).train(train)


def checkpoint_state_dict(model: nn.Module, name: str) -> dict:
    """The state dict of a possibly (Distributed)DataParallel-wrapped `model`, keyed as the
    published checkpoints of network `name` are."""
    prefix = _SAVED_PREFIX.get(name, "")
    return {prefix + k: v for k, v in unwrapped(model).state_dict().items()}
