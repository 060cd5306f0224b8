"""The Bi3D-style proximity network (v2 to v4) in PyTorch: a feature extractor and a plane head that matches.

Two separately exported parts, because the shift between them happens outside the graph (in numpy at run
time, `shift_features` below in training) so that the head stays DLA-legal and a plane can be any value:

- `FeatureNet`: per view, RGB in [0, 1] at the network input size -> `features` (C maps at 1/4 of the input)
  and `guide` (a few maps at 1/2, used from the left view only: where the mask's edges go).
- `PlaneHead`: left features, right features already shifted by the plane's disparity, and the left guide ->
  per pixel the probability that the surface is nearer than the plane (disparity > plane disparity), at 1/2
  of the input.

What v1 lacked: its head saw the two feature maps and their product at the plane only, and learnt the
rest, which on one renderer meant learning the renderer. This head is given matching evidence around the
plane explicitly: group-wise correlation of the left features with the shifted right ones moved by -4..4
feature pixels (a cost volume centred on the plane: which side of it the match lies), and the same on
2x2-pooled features over -8..8 (+-64 input pixels at 320 wide) for large offsets and weak texture. Shifts
inside the head are depthwise convolutions with fixed one-hot kernels, sums over a group are grouped 1x1
convolutions with fixed weights: Conv, ConvTranspose (kernel 2, stride 2), AveragePool, Relu, Mul, Add,
Concat on channels and Sigmoid only, every one on TensorRT's DLA list. A U-Net over the costs (with a little
left-image context) gives the answer at 1/4; a refinement at 1/2 guided by the left image's `guide` maps
puts its edges on the image's edges.

With guide_radius > 0 (v4, shipped: radius 2 and fine_kernel 1; v3: radius 1; v2 had neither) the head also
takes the right view's guide maps, shifted like the features but at 1/2, and correlates them with the left
guide over +-guide_radius half-resolution pixels: matching evidence at twice the resolution, where the
refinement places the boundaries.
fine_kernel=1 makes the last 1/2-resolution layer a 1x1 convolution: on onnxruntime's CPU kernels the 3x3
one with a single output channel costs ~8 % of the head, about what matching the guides adds.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEATURE_CHANNELS = 32
GUIDE_CHANNELS = 8
FEATURE_STRIDE = 4
OUTPUT_STRIDE = 2
GROUPS = 4
FINE_RADIUS = 4  # cost at the plane's shift + k feature pixels, k in -4..4
COARSE_RADIUS = 8  # on 2x2-pooled features: k in -8..8 pooled pixels


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_ch,
            out_ch,
            kernel,
            stride=stride,
            padding=dilation * (kernel // 2),
            dilation=dilation,
            bias=False,
        ),
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
    """Image [N, 3, H, W] in [0, 1] -> (features [N, C, H/4, W/4], guide [N, G, H/2, W/2])."""

    def __init__(self, channels: int = FEATURE_CHANNELS, guide_channels: int = GUIDE_CHANNELS) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 16, stride=2), conv_bn_relu(16, 16))
        self.guide = nn.Conv2d(16, guide_channels, 3, padding=1)
        self.body = nn.Sequential(conv_bn_relu(16, 32, stride=2), ResidualBlock(32), ResidualBlock(32))
        self.out = nn.Conv2d(32, channels, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.stem((image - 0.45) / 0.25)
        return self.out(self.body(half)), self.guide(half)


class CostVolume(nn.Module):
    """Group-wise correlation of `left` with `right` moved by -radius..radius pixels along the rows.

    Output [N, (2r+1) * groups, h, w], offset-major: channel j * groups + g is the mean over group g's
    channels of left(x) * right(x - k), k = j - r (right content from k pixels to the left: a match there
    means a disparity k pixels larger than the one `right` is shifted by). Fixed weights only."""

    def __init__(self, channels: int, radius: int, groups: int = GROUPS) -> None:
        super().__init__()
        self.offsets = 2 * radius + 1
        self.shifts = nn.ModuleList()
        for j in range(self.offsets):
            conv = nn.Conv2d(
                channels, channels, (1, self.offsets), padding=(0, radius), groups=channels, bias=False
            )
            weight = torch.zeros_like(conv.weight)
            weight[:, 0, 0, 2 * radius - j] = 1.0  # out(x) = in(x + m - r) with m = r - k
            conv.weight.data.copy_(weight)
            conv.weight.requires_grad_(False)
            self.shifts.append(conv)
        self.sum = nn.Conv2d(
            self.offsets * channels, self.offsets * groups, 1, groups=self.offsets * groups, bias=False
        )
        self.sum.weight.data.fill_(groups / channels)
        self.sum.weight.requires_grad_(False)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        # Offset by offset (the same arithmetic as one Mul over `offsets` stacked copies and one grouped
        # sum): no copies of the left features, no wide Concat; onnxruntime runs it 2x faster on a CPU.
        groups = self.sum.weight.shape[0] // self.offsets
        costs = []
        for j, shift in enumerate(self.shifts):
            weight = self.sum.weight[j * groups : (j + 1) * groups]
            costs.append(F.conv2d(left * shift(right), weight, groups=groups))
        return torch.cat(costs, dim=1)


class PlaneHead(nn.Module):
    """(left, shifted right) features [N, C, h, w], left guide [N, G, 2h, 2w] (and with guide_radius the
    shifted right guide, the same shape) -> P(nearer) [N, 1, 2h, 2w]."""

    def __init__(
        self,
        channels: int = FEATURE_CHANNELS,
        guide_channels: int = GUIDE_CHANNELS,
        guide_radius: int = 0,
        guide_groups: int = 2,
        refine_channels: int = 12,
        fine_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.guide_radius, self.guide_groups = guide_radius, guide_groups
        self.refine_channels, self.fine_kernel = refine_channels, fine_kernel
        self.guide_cost = CostVolume(guide_channels, guide_radius, guide_groups) if guide_radius > 0 else None
        guide_costs = self.guide_cost.offsets * guide_groups if self.guide_cost is not None else 0
        self.fine_cost = CostVolume(channels, FINE_RADIUS)
        self.coarse_cost = CostVolume(channels, COARSE_RADIUS)
        self.pool = nn.AvgPool2d(2)
        fine, coarse = self.fine_cost.offsets * GROUPS, self.coarse_cost.offsets * GROUPS
        self.context = conv_bn_relu(channels, 16, kernel=1)
        self.enter = conv_bn_relu(fine + 16, 32, kernel=1)
        self.enc1 = conv_bn_relu(32, 32)
        self.down2 = conv_bn_relu(32, 48, stride=2)
        self.merge2 = conv_bn_relu(48 + coarse, 48, kernel=1)
        self.enc2 = conv_bn_relu(48, 48)
        self.enc3 = nn.Sequential(
            conv_bn_relu(48, 64, stride=2), conv_bn_relu(64, 64), conv_bn_relu(64, 64, dilation=2)
        )
        self.up2 = nn.ConvTranspose2d(64, 48, 2, stride=2)
        self.dec2 = conv_bn_relu(48, 48)
        self.up1 = nn.ConvTranspose2d(48, 32, 2, stride=2)
        self.dec1 = conv_bn_relu(32, 32)
        self.coarse_logit = nn.Conv2d(32, 1, 1)
        self.up_half = nn.ConvTranspose2d(32, 12, 2, stride=2)
        self.refine = conv_bn_relu(12 + guide_channels + guide_costs, refine_channels)
        self.fine_logit = nn.Conv2d(refine_channels, 1, fine_kernel, padding=fine_kernel // 2)
        self.nearest = nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False)  # x2 nearest upsampling, fixed
        self.nearest.weight.data.fill_(1.0)
        self.nearest.weight.requires_grad_(False)

    def logits(
        self,
        left: torch.Tensor,
        right_shifted: torch.Tensor,
        guide: torch.Tensor,
        right_guide_shifted: torch.Tensor | None = None,
    ) -> torch.Tensor:
        fine = self.fine_cost(left, right_shifted)
        coarse = self.coarse_cost(self.pool(left), self.pool(right_shifted))
        e1 = self.enc1(self.enter(torch.cat([fine, self.context(left)], dim=1)))
        e2 = self.enc2(self.merge2(torch.cat([self.down2(e1), coarse], dim=1)))
        e3 = self.enc3(e2)
        d2 = self.dec2(F.relu(self.up2(e3) + e2))
        d1 = self.dec1(F.relu(self.up1(d2) + e1))
        at_half = [F.relu(self.up_half(d1)), guide]
        if self.guide_cost is not None:
            if right_guide_shifted is None:
                raise ValueError("this head matches at 1/2 too: it needs the shifted right guide")
            at_half.append(self.guide_cost(guide, right_guide_shifted))
        half = self.refine(torch.cat(at_half, dim=1))
        return self.fine_logit(half) + self.nearest(self.coarse_logit(d1))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """P(nearer): the sigmoid of `logits`, same inputs."""
        return torch.sigmoid(self.logits(*inputs))

    def architecture(self) -> dict:
        """What a checkpoint records to rebuild this head."""
        return {
            "guide_radius": self.guide_radius,
            "guide_groups": self.guide_groups,
            "refine_channels": self.refine_channels,
            "fine_kernel": self.fine_kernel,
        }


def shift_features(right: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Right features moved right by `shift` feature pixels, linearly interpolated, zero where unseen.

    right [N, C, h, w]; shift [N, h] (one value per row, so ground-like planes work too). Output at
    column x is right at x - shift. Mirrors dla_perception.models.proximity_geometry.shift_features.
    """
    right = right.float()  # in float32 whatever autocast did: bf16 would round a 45.3 px shift to 45.25
    n, c, h, w = right.shape
    columns = torch.arange(w, device=right.device, dtype=torch.float32)
    source = columns.view(1, 1, w) - shift.view(n, h, 1).float()  # [N, h, w]
    left_index = torch.floor(source)
    weight = (source - left_index).unsqueeze(1)  # [N, 1, h, w]
    out = torch.zeros_like(right)
    for offset, factor in ((0, 1.0 - weight), (1, weight)):
        index = left_index + offset
        valid = ((index >= 0) & (index <= w - 1)).unsqueeze(1)
        gathered = torch.gather(right, 3, index.clamp(0, w - 1).long().unsqueeze(1).expand(n, c, h, w))
        out = out + torch.where(valid, gathered * factor, torch.zeros_like(gathered))
    return out


def load_matching(module: nn.Module, state: dict) -> list[str]:
    """Load `state` into `module` where shapes agree; a convolution that gained input channels keeps the
    old weights on its first channels and zeros on the new ones, so a head that gained an input starts as
    the head it was trained from (a wider guide match too: its old offsets keep their weights). A 1x1
    convolution that was KxK starts from the old kernel's sum (the same answer on smooth maps, close
    elsewhere). Returns the names not loaded exactly (fresh or shrunk)."""
    fresh = []
    for name, value in module.state_dict().items():
        old = state.get(name)
        inexact = old is not None and old.dim() == 4 and value.shape[2:] == (1, 1) != old.shape[2:]
        if inexact:  # a KxK kernel that became 1x1
            old = old.sum(dim=(2, 3), keepdim=True)
        if old is not None and old.shape == value.shape:
            value.copy_(old)
        elif old is not None and _gained_inputs(old, value):
            value.zero_()
            value[:, : old.shape[1]].copy_(old)
        else:
            inexact = True  # not loaded at all
        if inexact:
            fresh.append(name)
    if isinstance(module, PlaneHead):
        _centre_guide_costs(module, state)
    return fresh


def _centre_guide_costs(head: PlaneHead, state: dict) -> None:
    """A head whose guide match widened (radius 1 -> 2): refine's weights for the old offsets go to the
    channels of those offsets (the new ones, centred around them, start at zero), not to the first ones."""
    old_sum = state.get("guide_cost.sum.weight")
    if head.guide_cost is None or old_sum is None:
        return
    old_costs, new_costs = old_sum.shape[0], head.guide_cost.offsets * head.guide_groups
    old, weight = state["refine.0.weight"], head.refine[0].weight
    if old_costs >= new_costs or old.shape[0] != weight.shape[0]:
        return  # the same match (loaded as it was) or a narrower one (left fresh)
    start = old.shape[1] - old_costs  # refine's channels before the guide costs
    pad = (new_costs - old_costs) // 2
    with torch.no_grad():
        weight[:, start:].zero_()
        weight[:, start + pad : start + pad + old_costs].copy_(old[:, start:])


def _gained_inputs(old: torch.Tensor, new: torch.Tensor) -> bool:
    return old.dim() == 4 and old.shape[0] == new.shape[0] and old.shape[2:] == new.shape[2:] and (
        old.shape[1] < new.shape[1]
    )


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters (the fixed shift and sum weights of the cost volumes are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
