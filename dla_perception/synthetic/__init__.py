"""Deterministic synthetic stereo scenes with exact ground truth, and bags written from them."""
