"""DLA-native formats: the backend's strided conversion (runtime/dla_formats.py) against an independent one
written from the array shapes TensorRT's header gives each format (test/tensorrt_double_loadable.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double_loadable as header

from dla_perception.runtime.dla_formats import Converter, LayoutError, layout_from_descriptor

CASES = [  # (format, dtype, channels): whole and partial channel groups, every DLA-native format
    ("DLA_LINEAR", "HALF", 5), ("DLA_LINEAR", "INT8", 3), ("CHW16", "HALF", 16), ("CHW16", "HALF", 24),
    ("CHW16", "HALF", 9), ("CHW32", "INT8", 32), ("CHW32", "INT8", 40), ("DLA_HWC4", "INT8", 3),
    ("DLA_HWC4", "HALF", 4), ("DLA_HWC4", "HALF", 1),
]


def _entry(fmt: str, dtype: str, channels: int, scale: float | None = None) -> dict:
    return {"name": "t", "shape": [2, channels, 3, 37], "dtype": dtype, "format": fmt,
            "scale": scale if dtype == "INT8" else None}


def _descriptor(entry: dict) -> SimpleNamespace:
    fields = header.descriptor_fields(entry)
    fields["size_"] = fields.pop("size")
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(("fmt", "dtype", "channels"), CASES)
def test_pack_and_unpack_agree_with_the_header_layouts(fmt, dtype, channels):
    entry = _entry(fmt, dtype, channels, scale=0.02)
    layout = layout_from_descriptor(_descriptor(entry))
    assert layout.format_name == fmt and layout.shape == (2, channels, 3, 37)
    rng = np.random.default_rng(channels)
    values = (rng.standard_normal(layout.shape) * 2).astype(np.float32)
    buffer = np.full(layout.size, 0xAB, np.uint8)  # garbage the converter must clear from the padding
    converter = Converter(layout, buffer, entry["scale"])
    converter.pack(values)
    assert buffer.tobytes() == header.from_nchw(values, entry)  # byte for byte, padding zero
    np.testing.assert_array_equal(converter.unpack(), header.to_nchw(buffer.tobytes(), entry))
    tolerance = 0.011 if dtype == "INT8" else 2e-3 * 8  # half a quantization step, FP16 at |x| < 8
    expected = np.clip(values, -128 * 0.02, 127 * 0.02) if dtype == "INT8" else values
    np.testing.assert_allclose(converter.unpack(), expected, atol=tolerance)


def test_layouts_refused_with_the_tensor_named():
    ok = _entry("CHW16", "HALF", 24)
    with pytest.raises(LayoutError, match="'t'.*cannot hold"):
        layout_from_descriptor(SimpleNamespace(**{**vars(_descriptor(ok)), "size_": 100}))
    with pytest.raises(LayoutError, match="unknown cuDLA data format 7"):
        layout_from_descriptor(SimpleNamespace(**{**vars(_descriptor(ok)), "data_format": 7}))
    with pytest.raises(LayoutError, match="1, 3 or 4 channels"):
        layout_from_descriptor(SimpleNamespace(**{**vars(_descriptor(ok)), "data_format": 2}))
    int8 = layout_from_descriptor(_descriptor(_entry("CHW32", "INT8", 8)))
    with pytest.raises(LayoutError, match="no scale"):
        Converter(int8, np.zeros(int8.size, np.uint8), None)
    layout = layout_from_descriptor(_descriptor(ok))
    with pytest.raises(LayoutError, match="expects"):
        Converter(layout, np.zeros(layout.size, np.uint8)).pack(np.zeros((1, 24, 3, 37), np.float32))


def test_strides_from_the_descriptor_win_over_the_documented_defaults():
    """A loadable may pad rows further than the format's minimum: the descriptor's line stride is used."""
    entry = _entry("CHW16", "HALF", 16)
    fields = vars(_descriptor(entry))
    padded = SimpleNamespace(**{**fields, "stride": [2, 37 * 32 + 64, (37 * 32 + 64) * 3, 0, 0, 0, 0, 0],
                                "size_": 2 * (37 * 32 + 64) * 3})
    layout = layout_from_descriptor(padded)
    assert layout.line_stride == 37 * 32 + 64
    values = np.random.default_rng(1).standard_normal(layout.shape).astype(np.float32)
    converter = Converter(layout, np.zeros(layout.size, np.uint8))
    converter.pack(values)
    np.testing.assert_allclose(converter.unpack(), values, atol=1e-2)
