"""What the stereo camera does to the light of both views: auto exposure, gain and white balance,
vignetting, optical blur, shot and read noise, and the 8-bit encoding. Drawn once per drive (camera_response):
a sequence does not flicker, and the two views differ as real stereo heads do."""

from __future__ import annotations

import functools
from statistics import NormalDist

import cv2
import numpy as np

# standard normal quantiles of 16 equiprobable bins, scaled to unit variance: Gaussian noise from four random
# bits per sample (a noise of a few grey levels needs no finer steps, and random bytes are the dear part)
_GAUSS_16 = np.array([NormalDist().inv_cdf((i + 0.5) / 16) for i in range(16)])


_GAUSS_LUT = np.zeros((1, 256), np.float32)


_GAUSS_LUT[0, :16] = _GAUSS_16 / np.sqrt(np.mean(_GAUSS_16 ** 2))


def encode_gamma(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (0..1) -> 8-bit with gamma 2 (a square root: close to sRGB's 2.2 and many times faster
    than a general power), rounded and saturated. Overwrites `linear` (a frame's own scratch image)."""
    cv2.max(linear, 0.0, dst=linear)
    cv2.sqrt(linear, dst=linear)
    return cv2.convertScaleAbs(linear, alpha=255.0)


@functools.lru_cache(maxsize=8)
def _radius2(height: int, width: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners (for vignetting)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    radius2.setflags(write=False)
    return radius2


_EXPOSURE_TARGET = 0.2  # linear mean brightness auto exposure aims at (about 114 of 255 after gamma 2)


def camera_response(rng: np.random.Generator) -> dict:
    """The stereo camera of a drive: exposure, white balance, noise, and per view a gain (the two sensors
    never match exactly), vignetting and optical blur. Drawn once per scene: a sequence does not flicker."""
    return {
        "exposure_bias": rng.uniform(0.6, 1.6), "white_balance": rng.uniform(0.9, 1.1, 3),
        "read_noise": rng.uniform(0.002, 0.012), "shot_noise": rng.uniform(0.0, 0.012),
        "gain": rng.uniform(0.9, 1.1, 2), "vignetting": rng.uniform(0.0, 0.3, 2),
        "blur": rng.uniform(0.3, 0.9, 2),
    }


def through_sensor(left: np.ndarray, right: np.ndarray, response: dict,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Both views through the camera: auto exposure (the left view's mean brightness to a target, with the
    camera's bias and a little wander per frame), gain and white balance, vignetting, blur and noise."""
    mean = float(np.mean(cv2.mean(left)[:3]))
    exposure = _EXPOSURE_TARGET / max(mean, 1e-3) * response["exposure_bias"] * rng.uniform(0.97, 1.03)
    images = []
    for view, linear in enumerate((left, right)):
        image = cv2.multiply(linear, _view_response(response, view, left.shape[:2]), scale=exposure,
                             dst=linear)  # in place: the shaded image is this frame's own
        sigma = float(response["blur"][view])
        side = 2 * int(np.ceil(2.0 * sigma)) + 1  # +-2 sigma: OpenCV's own choice for float images is +-4
        cv2.GaussianBlur(image, (side, side), sigma, dst=image)
        noise = cv2.LUT(_nibbles(rng, image.shape), _GAUSS_LUT)
        # noise level from the brightness (grey) of each pixel: shot noise grows with the light (the image
        # is not negative here: light, gains and blur weights all are not)
        variance = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        variance *= np.float32(response["shot_noise"] ** 2)
        variance += np.float32(response["read_noise"] ** 2)
        deviation = cv2.sqrt(variance, dst=variance)
        cv2.accumulateProduct(noise, cv2.cvtColor(deviation, cv2.COLOR_GRAY2RGB), image)  # image += both
        images.append(encode_gamma(image))
    return images[0], images[1]


def _nibbles(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform random integers 0..15 of this shape (uint8), two from each random byte."""
    count = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes((count + 1) // 2), np.uint8)
    values = np.empty(2 * len(raw), np.uint8)
    np.bitwise_and(raw, 15, out=values[:len(raw)])
    np.right_shift(raw, 4, out=values[len(raw):])
    return values[:count].reshape(shape)


def _view_response(response: dict, view: int, shape: tuple[int, int]) -> np.ndarray:
    """Per pixel and channel: white balance x the view's gain x its vignetting (fixed for a drive)."""
    key = ("factor", view, shape)
    if key not in response:
        gain = response["white_balance"] * response["gain"][view]
        vignette = 1.0 - np.float32(response["vignetting"][view]) * _radius2(*shape)
        # per channel, then merged: OpenCV's multiply by a per-channel scalar is several times slower
        response[key] = cv2.merge([vignette * np.float32(g) for g in gain])
    return response[key]
