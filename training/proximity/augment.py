"""Batches for training the proximity network, with the augmentations that keep it from learning a look.

Geometric (labels follow exactly): upside down (a rectified pair stays one), mirrored with the views swapped
(when the right view's ground truth exists), a random crop blown up to full size with its own horizontal
and vertical scale (disparity scales with the horizontal one).
Photometric, independently per view: gain, offset, gamma, white balance, Gaussian blur, vignetting, shot and
read noise; both views grey sometimes. The right view also gets a mild rectification error: a vertical
shift up to 0.6 px and a rotation up to 0.2 degrees, labels unchanged (real rigs are never perfect).
All random numbers come from the torch generator given, so a run is a function of its seed and its data.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


class Batcher:
    """Random augmented batches from frames held on the device. `add` appends frames as they arrive."""

    def __init__(
        self, capacity: int, height: int, width: int, device: str, generator: torch.Generator
    ) -> None:
        self.left = torch.zeros((capacity, height, width, 3), dtype=torch.uint8, device=device)
        self.right = torch.zeros_like(self.left)
        self.disparity = torch.full((capacity, height, width), math.nan, dtype=torch.float16, device=device)
        self.right_disparity = torch.full_like(self.disparity, math.nan)
        self.count = 0
        self.device = device
        self.generator = generator

    def add(self, frames) -> None:
        n = len(frames.left)
        if not n:
            return
        end = self.count + n
        for name in ("left", "right", "disparity", "right_disparity"):
            getattr(self, name)[self.count : end] = torch.from_numpy(getattr(frames, name)).to(self.device)
        self.count = end

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=self.device, generator=self.generator)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, generator=self.generator)

    def batch(self, size: int, augment: bool = True):
        """(left, right [N, 3, H, W] in [0, 1], disparity [N, 1, H, W] network px, NaN unknown)."""
        index = torch.randint(0, self.count, (size,), device=self.device, generator=self.generator)
        left = self.left[index].permute(0, 3, 1, 2).float() / 255.0
        right = self.right[index].permute(0, 3, 1, 2).float() / 255.0
        disparity = self.disparity[index].unsqueeze(1).float()
        if not augment:
            return left, right, disparity
        right_disparity = self.right_disparity[index].unsqueeze(1).float()
        left, right, disparity = self._geometric(left, right, disparity, right_disparity)
        right = self._rectification_error(right)
        grey = (self._rand(size, 1, 1, 1) < 0.1).float()
        left, right = self._photometric(left, grey), self._photometric(right, grey)
        return left, right, disparity

    def _geometric(self, left, right, disparity, right_disparity):
        n = left.shape[0]
        mirror = (self._rand(n) < 0.5) & torch.isfinite(right_disparity).flatten(1).any(dim=1)
        m = mirror.view(n, 1, 1, 1)
        left, right = torch.where(m, right.flip(3), left), torch.where(m, left.flip(3), right)
        disparity = torch.where(m, right_disparity.flip(3), disparity)
        flip = (self._rand(n) < 0.5).view(n, 1, 1, 1)
        left, right, disparity = (torch.where(flip, t.flip(2), t) for t in (left, right, disparity))
        # crops of 55-100 % of each side (half the samples), blown up to full size
        zoom = self._rand(n) < 0.5
        ones = torch.ones(n, device=self.device)
        sx = torch.where(zoom, 0.55 + 0.45 * self._rand(n), ones)
        sy = torch.where(zoom, (sx * (0.8 + 0.4 * self._rand(n))).clamp(0.5, 1.0), ones)
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0], theta[:, 1, 1] = sx, sy
        theta[:, 0, 2], theta[:, 1, 2] = (
            (1 - sx) * (2 * self._rand(n) - 1),
            (1 - sy) * (2 * self._rand(n) - 1),
        )
        grid = F.affine_grid(theta, list(left.shape), align_corners=False)
        left = F.grid_sample(left, grid, mode="bilinear", align_corners=False)
        right = F.grid_sample(right, grid, mode="bilinear", align_corners=False)
        disparity = F.grid_sample(disparity, grid, mode="nearest", align_corners=False) / sx.view(n, 1, 1, 1)
        # a pixel whose match leaves the crop keeps its label: the renderers label the image edge's band too
        return left, right, disparity

    def _rectification_error(self, right):
        n, _, h, w = right.shape
        angle = math.radians(0.2) * (2 * self._rand(n) - 1)
        shift = 0.6 * (2 * self._rand(n) - 1) * 2 / h  # normalised coordinates
        apply = self._rand(n) < 0.5
        angle, shift = angle * apply, shift * apply
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0], theta[:, 1, 1] = torch.cos(angle), torch.cos(angle)
        theta[:, 0, 1], theta[:, 1, 0] = -torch.sin(angle) * h / w, torch.sin(angle) * w / h
        theta[:, 1, 2] = shift
        grid = F.affine_grid(theta, list(right.shape), align_corners=False)
        return F.grid_sample(right, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _photometric(self, image, grey):
        n, _, h, w = image.shape
        image = _blur(
            image,
            torch.where(self._rand(n) < 0.4, 0.3 + 1.2 * self._rand(n), torch.zeros(n, device=self.device)),
        )
        ys = torch.linspace(-1, 1, h, device=self.device).view(1, 1, h, 1)
        xs = torch.linspace(-1, 1, w, device=self.device).view(1, 1, 1, w)
        centre = 0.2 * (2 * self._rand(n, 2, 1, 1) - 1)
        radius2 = (xs - centre[:, :1]) ** 2 + (ys - centre[:, 1:]) ** 2
        vignette = 1 - 0.5 * self._rand(n, 1, 1, 1) * (self._rand(n, 1, 1, 1) < 0.5) * radius2 / 2
        gain = torch.exp(math.log(0.6) + (math.log(1.6) - math.log(0.6)) * self._rand(n, 1, 1, 1))
        balance = 0.85 + 0.3 * self._rand(n, 3, 1, 1)
        offset = 0.16 * self._rand(n, 1, 1, 1) - 0.08
        gamma = torch.exp(math.log(0.7) + (math.log(1.4) - math.log(0.7)) * self._rand(n, 1, 1, 1))
        image = ((image * gain * balance * vignette + offset).clamp(0, 1) + 1e-6) ** gamma
        image = grey * image.mean(dim=1, keepdim=True).expand_as(image) + (1 - grey) * image
        shot = 0.03 * self._rand(n, 1, 1, 1) * image.clamp(min=0).sqrt()
        read = 0.02 * self._rand(n, 1, 1, 1)
        noise = (shot + read) * self._randn(*image.shape)
        return (image + noise).clamp(0, 1)


def _blur(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (0 = none), 7 taps."""
    n, c, h, w = image.shape
    taps = torch.arange(-3, 4, device=image.device, dtype=image.dtype).view(1, 7)
    safe = sigma.clamp(min=1e-3).view(n, 1)
    kernel = torch.exp(-0.5 * (taps / safe) ** 2)
    kernel = torch.where((sigma > 0).view(n, 1), kernel, (taps == 0).to(image.dtype))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [n*c, 7]
    x = image.reshape(1, n * c, h, w)
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), kernel.view(n * c, 1, 1, 7), groups=n * c)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), kernel.view(n * c, 1, 7, 1), groups=n * c)
    return x.view(n, c, h, w)
