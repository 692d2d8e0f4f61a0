"""DeepLabV3+_MobileNetV3: a small DeepLabV3+ that trains from scratch on a CPU (demo, tests).

Not a paper network. Backbone: torchvision's MobileNetV3-Small feature blocks with the last
stage dilated (output stride 16), randomly initialized (never downloaded), without the final
1x1 expansion to 576 channels and without the squeeze-and-excitation layers. Low-level skip
from the stride-4 block. The decoder is the one of DeepLabV3+_WideResNet38 with fewer channels
and ASPP rates sized for stride-16 maps of 128..512-pixel inputs.

Why no squeeze-and-excitation: each of those layers scales its block's channels by a function of
the whole image's mean features, a per-image switch in every block (the low-level skip
included). Trained from scratch on a few dozen generated images, the network uses these
switches to tell the COCO-like proxy images from the street scenes and raises its entropy only
there, instead of on the unfamiliar objects themselves, so nothing carries over to obstacles
in street scenes. Without them the only whole-image feature left is DeepLabV3+'s own ASPP
image pooling, as in the paper networks.
"""
import torch.nn as nn
import torchvision
from torchvision.ops import SqueezeExcitation

from src.model.deepv3 import DeepLabV3PlusDecoder

_LOW_END = 2     # blocks 0..1: 16 channels at stride 4
_HIGH_END = 12   # blocks 2..11: 96 channels at stride 16


def _without_squeeze_excitation(module: nn.Module) -> nn.Module:
    """`module` with every SqueezeExcitation layer replaced by an identity (keys of the others kept)."""
    found = [(parent, name) for parent in module.modules()
             for name, child in parent.named_children() if isinstance(child, SqueezeExcitation)]
    for parent, name in found:
        setattr(parent, name, nn.Identity())
    return module


class DeepLabV3PlusMobileNetV3(DeepLabV3PlusDecoder):
    def __init__(self, num_classes=19):
        super().__init__()
        features = torchvision.models.mobilenet_v3_small(weights=None, dilated=True).features
        features = _without_squeeze_excitation(features)
        self.low_level = features[:_LOW_END]
        self.high_level = features[_LOW_END:_HIGH_END]
        self._add_decoder(self.high_level[-1].out_channels, self.low_level[-1].out_channels, num_classes,
                          aspp_ch=64, rates=(3, 6, 9), skip_ch=32, decoder_ch=64)

    def forward(self, x):
        low = self.low_level(x)
        return self._decode(self.high_level(low), low, x.shape[2:])
