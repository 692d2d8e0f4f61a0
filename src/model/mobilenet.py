"""DeepLabV3+_MobileNetV3: a small DeepLabV3+ that trains from scratch on a CPU (demo, tests).

Not a paper network. Backbone: torchvision's MobileNetV3-Small feature blocks with the last
stage dilated (output stride 16), randomly initialized (never downloaded), without the final
1x1 expansion to 576 channels. Low-level skip from the stride-4 block. The decoder is the one of
DeepLabV3+_WideResNet38 with fewer channels and ASPP rates sized for stride-16 maps of
128..512-pixel inputs.
"""
import torchvision

from src.model.deepv3 import DeepLabV3PlusDecoder

_LOW_BLOCKS = 2     # blocks 0..1: 16 channels at stride 4
_HIGH_BLOCKS = 12   # blocks 2..11: 96 channels at stride 16


class DeepLabV3PlusMobileNetV3(DeepLabV3PlusDecoder):
    def __init__(self, num_classes=19):
        super().__init__()
        features = torchvision.models.mobilenet_v3_small(weights=None, dilated=True).features
        self.low_level = features[:_LOW_BLOCKS]
        self.high_level = features[_LOW_BLOCKS:_HIGH_BLOCKS]
        self._add_decoder(self.high_level[-1].out_channels, self.low_level[-1].out_channels, num_classes,
                          aspp_ch=64, rates=(3, 6, 9), skip_ch=32, decoder_ch=64)

    def forward(self, x):
        low = self.low_level(x)
        return self._decode(self.high_level(low), low, x.shape[2:])
