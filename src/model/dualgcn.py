"""DualGCNNet_res50: dilated ResNet-50 (deep stem, output stride 8) + DualGCN head.

Layout of GALD-DGCNet's Cityscapes checkpoint. The DualGCN head (Zhang et al., BMVC 2019)
reasons with two graphs:
- a spatial graph on a 1/8-downsampled copy of the features (`local` + `gcn_local_attention`),
  whose output gates the features: x * local + x;
- a feature graph in a projected space: `theta` projects the pixels onto 128 nodes, `phi`
  gives each node a 256-d state, node interaction (`conv_adj`: Z + A Z, the paper's (I - A) Z with
  A learned) and state update (`conv_wg`), then re-projection onto the pixels.
The two are concatenated and fused by `final`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from src.model.deepv3 import upsample


def conv_bn(in_ch, out_ch, kernel, stride=1, dilation=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=dilation * (kernel // 2),
                  dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch))


def conv_bn_relu(in_ch, out_ch, kernel, stride=1):
    return nn.Sequential(*conv_bn(in_ch, out_ch, kernel, stride), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut, inplace=True)


def resnet_layer(in_ch, planes, num_blocks, stride=1, dilation=1, multi_grid=(1,)):
    """Blocks of one stage; block i dilates by dilation * multi_grid[i % len(multi_grid)]."""
    out_ch = planes * Bottleneck.expansion
    downsample = conv_bn(in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else None
    blocks = [Bottleneck(in_ch, planes, stride, dilation * multi_grid[0], downsample)]
    blocks += [Bottleneck(out_ch, planes, 1, dilation * multi_grid[i % len(multi_grid)])
               for i in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class SpatialGCN(nn.Module):
    """Graph over pixels with channel attention: softmax(q v^T) mixes k's channels, then conv_wg."""

    def __init__(self, planes):
        super().__init__()
        inter = planes // 2
        self.node_k = nn.Conv2d(planes, inter, 1)
        self.node_v = nn.Conv2d(planes, inter, 1)
        self.node_q = nn.Conv2d(planes, inter, 1)
        self.conv_wg = nn.Conv1d(inter, inter, 1, bias=False)
        self.bn_wg = nn.BatchNorm1d(inter)
        self.softmax = nn.Softmax(dim=2)
        self.out = nn.Sequential(nn.Conv2d(inter, planes, 1), nn.BatchNorm2d(planes))

    def forward(self, x):
        n, _, h, w = x.shape
        k = self.node_k(x).flatten(2)                                           # (n, c, hw)
        v = self.node_v(x).flatten(2)
        q = self.node_q(x).flatten(2)
        attention = self.softmax(torch.bmm(q, v.transpose(1, 2)))               # (n, c, c)
        mixed = torch.bmm(k.transpose(1, 2), attention).transpose(1, 2)         # (n, c, hw)
        mixed = self.bn_wg(self.conv_wg(mixed)).view(n, -1, h, w)
        return F.relu(self.out(mixed) + x, inplace=True)


class DualGCN(nn.Module):
    def __init__(self, planes, ratio=4):
        super().__init__()
        nodes, state = planes // ratio, planes // ratio * 2
        self.phi = nn.Conv2d(planes, state, 1, bias=False)
        self.bn_phi = nn.BatchNorm2d(state)
        self.theta = nn.Conv2d(planes, nodes, 1, bias=False)
        self.bn_theta = nn.BatchNorm2d(nodes)
        self.conv_adj = nn.Conv1d(nodes, nodes, 1, bias=False)
        self.bn_adj = nn.BatchNorm1d(nodes)
        self.conv_wg = nn.Conv1d(state, state, 1, bias=False)
        self.bn_wg = nn.BatchNorm1d(state)
        self.conv3 = nn.Conv2d(state, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.local = nn.Sequential(*conv_bn(planes, planes, 3, 2, groups=planes),
                                   *conv_bn(planes, planes, 3, 2, groups=planes),
                                   *conv_bn(planes, planes, 3, 2, groups=planes))
        self.gcn_local_attention = SpatialGCN(planes)
        self.final = conv_bn(planes * 2, planes, 1)

    def spatial_branch(self, x):
        gate = upsample(self.gcn_local_attention(self.local(x)), x.shape[2:])
        return x * gate + x

    def feature_branch(self, x):
        n, _, h, w = x.shape
        states = self.bn_phi(self.phi(x)).flatten(2)                            # (n, 256, hw)
        projection = self.bn_theta(self.theta(x)).flatten(2)                    # (n, 128, hw)
        z = torch.bmm(states, projection.transpose(1, 2))                       # (n, 256, 128)
        z = z + self.bn_adj(self.conv_adj(z.transpose(1, 2))).transpose(1, 2)
        z = self.bn_wg(self.conv_wg(z))
        y = torch.bmm(z, projection).view(n, -1, h, w)
        return F.relu(x + self.bn3(self.conv3(y)), inplace=True)

    def forward(self, x):
        return self.final(torch.cat([self.spatial_branch(x), self.feature_branch(x)], 1))


class DualGCNHead(nn.Module):
    def __init__(self, in_ch, inter_ch, num_classes):
        super().__init__()
        self.conva = conv_bn_relu(in_ch, inter_ch, 3)
        self.dualgcn = DualGCN(inter_ch)
        self.convb = conv_bn_relu(inter_ch, inter_ch, 3)
        self.bottleneck = nn.Sequential(*conv_bn_relu(in_ch + inter_ch, inter_ch, 3),
                                        nn.Conv2d(inter_ch, num_classes, 1))

    def forward(self, x):
        context = self.convb(self.dualgcn(self.conva(x)))
        return self.bottleneck(torch.cat([x, context], 1))


class DualGCNNetRes50(nn.Module):
    """Returns the logits (N, num_classes, H, W), upsampled from stride 8, in train and eval mode.

    `dsn` (the auxiliary head on layer3 used for deep supervision when GALD trained the net) is
    kept so that checkpoints load strictly, but it is not evaluated: the reference computes it and
    discards the result. The logits and gradients are the same; only dsn's BatchNorm running
    statistics are no longer updated in train mode. Its parameters never get a gradient (as in
    the reference), so they do not require one: DistributedDataParallel would otherwise wait for
    their gradients.
    """

    def __init__(self, num_classes=19):
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn_relu(3, 64, 3, 2), *conv_bn_relu(64, 64, 3),
                                   nn.Conv2d(64, 128, 3, padding=1, bias=False))
        self.bn1 = nn.BatchNorm2d(128)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = resnet_layer(128, 64, 3)
        self.layer2 = resnet_layer(256, 128, 4, stride=2)
        self.layer3 = resnet_layer(512, 256, 6, dilation=2)
        self.layer4 = resnet_layer(1024, 512, 3, dilation=4, multi_grid=(1, 2, 4))
        self.head = DualGCNHead(2048, 512, num_classes)
        self.dsn = nn.Sequential(nn.Conv2d(1024, 512, 3, padding=1), nn.BatchNorm2d(512),
                                 nn.Dropout2d(0.1), nn.Conv2d(512, num_classes, 1))
        self.dsn.requires_grad_(False)

    def forward(self, x):
        features = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            features = layer(features)
        return upsample(self.head(features), x.shape[2:])
