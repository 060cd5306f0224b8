"""The project's detector: a small anchor-free, three-scale (strides 8/16/32) convolutional detector.

Only Conv, BatchNorm (folded into Conv at export), ReLU, nearest 2x Resize, Add, Sigmoid and channel
Concat: layers DLA runs (docs/detection.md). Each output is [1, 5 + C, H/s, W/s] in the `native` format
that dla_perception.models.detection_decode documents: channels 0-1 the box centre's offset from the cell
centre and 2-3 log(width/stride), log(height/stride) (raw), channel 4 the objectness and 5.. the class
probabilities (sigmoid applied in the graph when exporting, logits while training).
"""

from __future__ import annotations

import torch
from torch import nn

STRIDES = (8, 16, 32)


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Head(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = conv_bn_relu(channels, channels)
        self.box = nn.Conv2d(channels, 4, 1)
        self.score = nn.Conv2d(channels, 1 + num_classes, 1)
        nn.init.constant_(self.score.bias, -4.6)  # start near p = 0.01: most cells are background

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        return self.box(x), self.score(x)


class Detector(nn.Module):
    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.export_mode = False
        self.stem = nn.Sequential(conv_bn_relu(3, 16, 2), conv_bn_relu(16, 32, 2), conv_bn_relu(32, 32))
        self.c3 = nn.Sequential(conv_bn_relu(32, 64, 2), conv_bn_relu(64, 64), conv_bn_relu(64, 64))
        self.c4 = nn.Sequential(conv_bn_relu(64, 96, 2), conv_bn_relu(96, 96), conv_bn_relu(96, 96))
        self.c5 = nn.Sequential(conv_bn_relu(96, 128, 2), conv_bn_relu(128, 128), conv_bn_relu(128, 128))
        self.lateral3 = nn.Conv2d(64, width, 1)
        self.lateral4 = nn.Conv2d(96, width, 1)
        self.lateral5 = nn.Conv2d(128, width, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.smooth = nn.ModuleList(conv_bn_relu(width, width) for _ in STRIDES)
        self.heads = nn.ModuleList(Head(width, num_classes) for _ in STRIDES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lateral5(c5)
        p4 = self.lateral4(c4) + self.up(p5)
        p3 = self.lateral3(c3) + self.up(p4)
        outputs = []
        for level, feature in enumerate((p3, p4, p5)):
            box, score = self.heads[level](self.smooth[level](feature))
            if self.export_mode:
                score = torch.sigmoid(score)
            outputs.append(torch.cat([box, score], dim=1))
        return outputs


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv2d+BatchNorm2d pair (eval mode) so the exported graph is Conv + ReLU only."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) >= 2:
            if isinstance(module[0], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d):
                module[0] = fuse_conv_bn_eval(module[0], module[1])
                module[1] = nn.Identity()
    return model
