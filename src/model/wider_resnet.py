"""WiderResNet-38 (A2 variant, dilated): the trunk of DeepLabV3+_WideResNet38.

Pre-activation residual blocks. Every normalization is `Sequential(BatchNorm2d, ReLU)`, which is
why the BN keys of NVIDIA's checkpoint carry a '.0.' (`mod2.block1.bn1.0.weight`). The trunk
stops at output stride 8: mod4 is the last module that downsamples, mod5..mod7 dilate instead.
"""
from collections import OrderedDict

import torch.nn as nn

# Per module mod2..mod7: channels of the block's convs (three entries: a bottleneck block),
# number of blocks, dilation, stride of the first block, Dropout2d before the last conv.
_MODULES = (
    ((128, 128), 3, 1, 1, None),
    ((256, 256), 3, 1, 1, None),
    ((512, 512), 6, 1, 2, None),
    ((512, 1024), 3, 2, 1, None),
    ((512, 1024, 2048), 1, 4, 1, 0.3),
    ((1024, 2048, 4096), 1, 4, 1, 0.5),
)
LOW_LEVEL_CHANNELS = 128   # mod2 output, stride 2
OUT_CHANNELS = 4096        # mod7 output, stride 8


def bn_relu(channels):
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def conv3x3(in_ch, out_ch, stride=1, dilation=1):
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class IdentityResidualBlock(nn.Module):
    """out = convs(bn1(x)) + shortcut, where shortcut = proj_conv(bn1(x)) if the shape changes, else x."""

    def __init__(self, in_ch, channels, stride=1, dilation=1, dropout=None):
        super().__init__()
        self.bn1 = bn_relu(in_ch)
        if len(channels) == 2:
            layers = [("conv1", conv3x3(in_ch, channels[0], stride, dilation)),
                      ("bn2", bn_relu(channels[0])),
                      ("conv2", conv3x3(channels[0], channels[1], 1, dilation))]
        else:
            layers = [("conv1", nn.Conv2d(in_ch, channels[0], 1, stride=stride, bias=False)),
                      ("bn2", bn_relu(channels[0])),
                      ("conv2", conv3x3(channels[0], channels[1], 1, dilation)),
                      ("bn3", bn_relu(channels[1])),
                      ("conv3", nn.Conv2d(channels[1], channels[2], 1, bias=False))]
        if dropout is not None:
            layers.insert(-1, ("dropout", nn.Dropout2d(dropout)))
        self.convs = nn.Sequential(OrderedDict(layers))
        needs_projection = stride != 1 or in_ch != channels[-1]
        self.proj_conv = nn.Conv2d(in_ch, channels[-1], 1, stride=stride, bias=False) if needs_projection else None

    def forward(self, x):
        pre = self.bn1(x)
        shortcut = x if self.proj_conv is None else self.proj_conv(pre)
        return self.convs(pre) + shortcut


def wider_resnet38_modules():
    """The trunk's modules by name, in the order of the checkpoint: mod1..mod7, then pool2, pool3.

    Applied as mod1, pool2, mod2, pool3, mod3, ..., mod7.
    """
    modules = OrderedDict(mod1=nn.Sequential(OrderedDict(conv1=conv3x3(3, 64))))
    in_ch = 64
    for index, (channels, num_blocks, dilation, stride, dropout) in enumerate(_MODULES, start=2):
        blocks = []
        for b in range(num_blocks):
            blocks.append((f"block{b + 1}", IdentityResidualBlock(
                in_ch, channels, stride if b == 0 else 1, dilation, dropout)))
            in_ch = channels[-1]
        modules[f"mod{index}"] = nn.Sequential(OrderedDict(blocks))
    modules["pool2"] = nn.MaxPool2d(3, stride=2, padding=1)
    modules["pool3"] = nn.MaxPool2d(3, stride=2, padding=1)
    return modules
