"""DeepLabV3+ decoder, and DeepLabV3+_WideResNet38 (the layout of NVIDIA's Cityscapes checkpoint).

The decoder: ASPP on the deep features -> 1x1 `bot_aspp`; 1x1 `bot_fine` on the low-level
features; upsample the first to the second, concatenate [fine, aspp], `final` convs to the class
logits, upsample to the input size. Every upsampling is bilinear with align_corners=True.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from src.model.wider_resnet import LOW_LEVEL_CHANNELS, OUT_CHANNELS, wider_resnet38_modules


def upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def conv_bn_relu(in_ch, out_ch, kernel, dilation=1):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: [image pooling, 1x1, 3x3 at each rate], concatenated."""

    def __init__(self, in_ch, out_ch, rates):
        super().__init__()
        self.features = nn.ModuleList(
            [conv_bn_relu(in_ch, out_ch, 1)] + [conv_bn_relu(in_ch, out_ch, 3, r) for r in rates])
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = conv_bn_relu(in_ch, out_ch, 1)

    def forward(self, x):
        # Bilinear upsampling of a 1x1 map (align_corners=True) is a broadcast: expand is exact.
        pooled = self.img_conv(self.img_pooling(x)).expand(-1, -1, *x.shape[2:])
        return torch.cat([pooled] + [branch(x) for branch in self.features], 1)


class DeepLabV3PlusDecoder(nn.Module):
    """Base class: subclasses register their backbone, then call `_add_decoder`, and use `_decode`."""

    def _add_decoder(self, high_ch, low_ch, num_classes, aspp_ch, rates, skip_ch, decoder_ch):
        self.aspp = ASPP(high_ch, aspp_ch, rates)
        self.bot_fine = nn.Conv2d(low_ch, skip_ch, 1, bias=False)
        self.bot_aspp = nn.Conv2d(aspp_ch * (len(rates) + 2), aspp_ch, 1, bias=False)
        self.final = nn.Sequential(*conv_bn_relu(aspp_ch + skip_ch, decoder_ch, 3),
                                   *conv_bn_relu(decoder_ch, decoder_ch, 3),
                                   nn.Conv2d(decoder_ch, num_classes, 1, bias=False))

    def _decode(self, high, low, size):
        """Logits at `size` from the deep features `high` and the low-level features `low`."""
        deep = upsample(self.bot_aspp(self.aspp(high)), low.shape[2:])
        fused = torch.cat([self.bot_fine(low), deep], 1)
        return upsample(self.final(fused), size)


class DeepLabV3PlusWideResNet38(DeepLabV3PlusDecoder):
    """WiderResNet-38 trunk (stride 8) + DeepLabV3+ decoder with the skip from mod2 (stride 2).

    ASPP rates (12, 24, 36): the usual (6, 12, 18) doubled for output stride 8.
    Returns the logits (N, num_classes, H, W) in train and eval mode.
    """

    def __init__(self, num_classes=19):
        super().__init__()
        for name, module in wider_resnet38_modules().items():
            self.add_module(name, module)
        self._add_decoder(OUT_CHANNELS, LOW_LEVEL_CHANNELS, num_classes,
                          aspp_ch=256, rates=(12, 24, 36), skip_ch=48, decoder_ch=256)

    def forward(self, x):
        low = self.mod2(self.pool2(self.mod1(x)))
        high = self.mod3(self.pool3(low))
        for module in (self.mod4, self.mod5, self.mod6, self.mod7):
            high = module(high)
        return self._decode(high, low, x.shape[2:])
