"""The Bi3D-style proximity network in PyTorch: a feature extractor and a plane head.

Two separately exported parts, because the shift between them happens outside the graph (in numpy at run
time, `shift_features` below in training) so that the head stays DLA-legal and a plane can be any value:

- `FeatureNet`: per view, RGB in [0, 1] at the network input size -> C feature maps at 1/4 resolution.
- `PlaneHead`: left features and right features already shifted by a plane's disparity -> per pixel the
  probability that the surface is nearer than the plane (disparity > plane disparity), at 1/4 resolution.
  Only Conv, BatchNorm (folded on export), ReLU, Mul, Add, Concat on channels, stride-2 transposed Conv
  and Sigmoid: every layer is on TensorRT's DLA list.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEATURE_CHANNELS = 24
FEATURE_STRIDE = 4


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class FeatureNet(nn.Module):
    """Image [N, 3, H, W] in [0, 1] -> features [N, C, H/4, W/4]."""

    def __init__(self, channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(3, 16, stride=2),
            conv_bn_relu(16, 16),
            conv_bn_relu(16, 32, stride=2),
            ResidualBlock(32),
            ResidualBlock(32),
        )
        self.out = nn.Conv2d(32, channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.out(self.body((image - 0.45) / 0.25))


class PlaneHead(nn.Module):
    """(left, shifted right) features [N, C, h, w] -> P(nearer than the plane) [N, 1, h, w].

    A small U-Net down to 1/16 of the input resolution for context on weakly textured surfaces.
    """

    def __init__(self, channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.enter = conv_bn_relu(3 * channels, 32, kernel=1)
        self.enc1 = conv_bn_relu(32, 32)
        self.down2 = conv_bn_relu(32, 48, stride=2)
        self.enc2 = conv_bn_relu(48, 48)
        self.down3 = conv_bn_relu(48, 64, stride=2)
        self.enc3 = nn.Sequential(conv_bn_relu(64, 64), conv_bn_relu(64, 64))
        self.up2 = nn.ConvTranspose2d(64, 48, 2, stride=2)
        self.dec2 = conv_bn_relu(48, 48)
        self.up1 = nn.ConvTranspose2d(48, 32, 2, stride=2)
        self.dec1 = conv_bn_relu(32, 32)
        self.classify = nn.Conv2d(32, 1, 1)

    def logits(self, left: torch.Tensor, right_shifted: torch.Tensor) -> torch.Tensor:
        x = self.enter(torch.cat([left, right_shifted, left * right_shifted], dim=1))
        e1 = self.enc1(x)
        e2 = self.enc2(self.down2(e1))
        e3 = self.enc3(self.down3(e2))
        d2 = self.dec2(F.relu(self.up2(e3) + e2))
        d1 = self.dec1(F.relu(self.up1(d2) + e1))
        return self.classify(d1)

    def forward(self, left: torch.Tensor, right_shifted: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(left, right_shifted))


def shift_features(right: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Right features moved right by `shift` feature pixels, linearly interpolated, zero where unseen.

    right [N, C, h, w]; shift [N, h] (one value per row, so ground-like planes work too). Output at
    column x is right at x - shift. Mirrors dla_perception.models.proximity_geometry.shift_features.
    """
    n, c, h, w = right.shape
    columns = torch.arange(w, device=right.device, dtype=right.dtype)
    source = columns.view(1, 1, w) - shift.view(n, h, 1)  # [N, h, w]
    left_index = torch.floor(source)
    weight = (source - left_index).unsqueeze(1)  # [N, 1, h, w]
    out = torch.zeros_like(right)
    for offset, factor in ((0, 1.0 - weight), (1, weight)):
        index = left_index + offset
        valid = ((index >= 0) & (index <= w - 1)).unsqueeze(1)
        gathered = torch.gather(right, 3, index.clamp(0, w - 1).long().unsqueeze(1).expand(n, c, h, w))
        out = out + torch.where(valid, gathered * factor, torch.zeros_like(gathered))
    return out
