"""The DLA placement rules, as data: one entry per ONNX operator family, each with its source and reason.

Every rule names the TensorRT layer the ONNX parser turns the operator into, whether that layer type can
run on a DLA core at all, the numeric limits its checker applies (see `checks.py`), where the limit comes
from and how sure we are:

- ``documented``: stated in NVIDIA's DLA layer table (TensorRT 10.x "DLA Supported Layers and
  Restrictions") or the layer's API documentation.
- ``conservative``: the documentation is silent or vague; the rule predicts a GPU fallback where TensorRT
  may in fact accept the layer. A model that passes a conservative rule will not fall back for that reason.
- ``uncertain``: the rule predicts DLA, but no primary source confirmed it for every TensorRT line.

Edit the table here, not the analysis: the analysis only reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DLA_DOC = "TensorRT 10.x developer guide, 'DLA Supported Layers and Restrictions'"
GENERAL_DOC = DLA_DOC + ", general restrictions"
SOFTMAX_DOC = "TensorRT 10 API, ISoftMaxLayer (DLA constraints)"
PARSER_DOC = "TensorRT 10 ONNX parser (onnx-tensorrt) operator-to-layer mapping"
PROJECT = "dla_perception (conservative rule)"

DOCUMENTED, CONSERVATIVE, UNCERTAIN = "documented", "conservative", "uncertain"

# How many DLA loadables (subgraphs) one core can hold at once.
MAX_LOADABLES_PER_CORE = 16


@dataclass(frozen=True)
class Rule:
    """Where one family of ONNX operators lands and why."""

    id: str
    ops: tuple[str, ...]
    layer: str | None  # TensorRT layer the parser creates; None = no layer (aliased or folded away)
    dla: bool  # can this layer type run on DLA at all
    reason: str  # why the layer lands where it does (shown with every GPU fallback it causes)
    source: str
    certainty: str = DOCUMENTED
    check: str | None = None  # name of the limit checker in checks.py (None: the layer type decides)
    limits: Mapping[str, Any] = field(default_factory=dict)
    since: tuple[int, int] | None = None  # first TensorRT line where the rule allows DLA

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "ops": list(self.ops),
            "layer": self.layer,
            "dla": self.dla,
            "reason": self.reason,
            "source": self.source,
            "certainty": self.certainty,
            "limits": dict(self.limits),
            "since": ".".join(map(str, self.since)) if self.since else None,
        }


# Restrictions that apply to every layer placed on DLA (checked before the layer's own rule).
GENERAL_RULES: tuple[Rule, ...] = (
    Rule(
        "static-shapes", (), None, True,
        "DLA needs static shapes: every dimension known at build time (min = opt = max)",
        GENERAL_DOC,
    ),
    Rule(
        "rank-4", (), None, True,
        "DLA layers are 2-D (NCHW) layers: activations must be 4-D. Rank-5+ tensors with folded batch "
        "dimensions are allowed in principle; this check treats them as GPU",
        DLA_DOC + " ('2D only')", CONSERVATIVE, limits={"rank": 4},
    ),
    Rule(
        "dimension-limits", (), None, True,
        "every non-batch dimension at most 8192, batch at most 4096",
        GENERAL_DOC, limits={"max_dim": 8192, "max_batch": 4096},
    ),
    Rule(
        "float-tensors", (), None, True,
        "DLA computes in FP16/INT8 only: integer and boolean tensors (indices, shapes, masks) stay on "
        "the GPU",
        GENERAL_DOC, CONSERVATIVE,
    ),
    Rule(
        "strongly-typed-fp16", (), None, True,
        "TensorRT 11.4+ builds DLA engines from strongly typed networks only: the ONNX tensor types decide "
        "the precision, and DLA does not run FP32, so float32 layers fall back (convert the model to FP16)",
        "TensorRT 11.4 release notes (DLA returns for strongly typed networks)", UNCERTAIN,
    ),
)

LAYER_RULES: tuple[Rule, ...] = (
    Rule(
        "no-layer", ("Identity", "Dropout", "Constant"), None, True,
        "not a layer: the parser aliases the tensor or stores the constant as weights",
        PARSER_DOC,
    ),
    Rule(
        "convolution", ("Conv",), "Convolution", True,
        "2-D convolution: kernel 1-32, stride 1-8, dilation 1-32, padding 0-31 and smaller than the kernel, "
        "at most 8192 output maps, constant weights",
        DLA_DOC, check="convolution",
        limits={"kernel": (1, 32), "stride": (1, 8), "dilation": (1, 32), "padding": (0, 31), "maps": 8192},
    ),
    Rule(
        "deconvolution", ("ConvTranspose",), "Deconvolution", True,
        "2-D deconvolution: kernel and stride 1-32, no padding, no groups, no dilation, constant weights",
        DLA_DOC, check="deconvolution", limits={"kernel": (1, 32), "stride": (1, 32)},
    ),
    Rule(
        "pooling", ("MaxPool", "AveragePool"), "Pooling", True,
        "2-D max or average pooling: window 1-8, stride 1-16, padding 0-7",
        DLA_DOC, check="pooling", limits={"window": (1, 8), "stride": (1, 16), "padding": (0, 7)},
    ),
    Rule(
        "global-pooling", ("GlobalAveragePool", "GlobalMaxPool"), "Pooling", True,
        "a global pooling is a pooling with the whole H x W as window: DLA only when H, W <= 8 "
        "(--fix chains AveragePools)",
        DLA_DOC, check="global_pooling", limits={"window": (1, 8)},
    ),
    Rule(
        "activation", ("Relu", "Sigmoid", "Tanh", "LeakyRelu"), "Activation", True,
        "DLA activations: ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU",
        DLA_DOC,
    ),
    Rule(
        "clip", ("Clip",), "Activation", True,
        "Clip is a clipped ReLU on DLA only with constant min = 0 and a constant max",
        DLA_DOC + " (Clipped ReLU)", check="clip",
    ),
    Rule(
        "other-activation",
        ("Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "ThresholdedRelu", "Gelu",
         "Mish", "Celu", "Hardmax", "LogSoftmax"),
        "Activation", False,
        "not one of the DLA activation types (ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU)",
        DLA_DOC,
    ),
    Rule(
        "prelu", ("PRelu",), "ParametricReLU", True,
        "parametric ReLU with constant slopes",
        DLA_DOC, check="prelu",
    ),
    Rule(
        "elementwise", ("Add", "Sub", "Mul", "Max", "Min", "Sum"), "ElementWise", True,
        "element-wise Sum, Sub, Prod, Max, Min. Broadcasting between two computed tensors is not "
        "documented for DLA; only constant operands may broadcast (per-tensor or per-channel)",
        DLA_DOC, CONSERVATIVE, check="elementwise",
    ),
    Rule(
        "elementwise-div-pow", ("Div", "Pow"), "ElementWise", True,
        "element-wise Div and Pow appear in the TensorRT 10 DLA table but not in older ones "
        "(TensorRT 8 logged 'DLA cores do not support DIV ElementWise operation')",
        DLA_DOC, UNCERTAIN, check="elementwise", since=(10, 0),
    ),
    Rule(
        "comparison", ("Equal", "Greater", "Less"), "ElementWise", True,
        "comparisons run on DLA in INT8 only, and their output must be cast to FP16/INT8 immediately",
        DLA_DOC, check="comparison",
    ),
    Rule(
        "concatenation", ("Concat",), "Concatenation", True,
        "concatenation along the channel axis only, at least 2 inputs of the same spatial size",
        DLA_DOC, check="concatenation",
    ),
    Rule(
        "resize", ("Resize", "Upsample"), "Resize", True,
        "4 scales with N and C scale 1; integer H/W scales 1-32 for nearest, 1-4 for linear; no "
        "downsampling, no cubic. Coordinate-transformation modes are not documented for DLA",
        DLA_DOC, UNCERTAIN, check="resize", limits={"nearest": (1, 32), "linear": (1, 4)},
    ),
    Rule(
        "slice", ("Slice",), "Slice", True,
        "static 4-D slice with stride 1 that does not slice the batch axis",
        DLA_DOC, check="slice",
    ),
    Rule(
        "split", ("Split",), "Slice", True,
        "the parser makes one Slice layer per output: static, stride 1, batch axis not split",
        PARSER_DOC + "; " + DLA_DOC + " (Slice)", CONSERVATIVE, check="split",
    ),
    Rule(
        "softmax", ("Softmax",), "SoftMax", True,
        "softmax over the channel or a spatial axis; the axis at most 8192 when all other non-batch "
        "dimensions are 1, else at most 1024",
        SOFTMAX_DOC, check="softmax", limits={"single": 8192, "general": 1024},
    ),
    Rule(
        "shuffle", ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"), "Shuffle", True,
        "Shuffle (reshape/transpose) on DLA with 4-D input and output and the batch axis left in place; "
        "the DLA table lists Shuffle only 'with limits'",
        DLA_DOC, CONSERVATIVE, check="shuffle",
    ),
    Rule(
        "batchnorm", ("BatchNormalization",), "Scale", True,
        "inference BatchNormalization is a Scale layer (fused into a preceding Convolution)",
        DLA_DOC + " (Scale)", check="batchnorm",
    ),
    Rule(
        "lrn", ("LRN",), "LRN", True,
        "LRN across channels with window 3, 5, 7 or 9",
        DLA_DOC, check="lrn", limits={"sizes": (3, 5, 7, 9)},
    ),
    Rule(
        "unary-abs", ("Abs",), "Unary", True,
        "the only Unary operation DLA runs is Abs",
        DLA_DOC,
    ),
    Rule(
        "unary-other",
        ("Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Floor", "Ceil", "Round", "Sin", "Cos", "Tan", "Asin",
         "Acos", "Atan", "Sinh", "Cosh", "Erf", "Not", "Sign", "IsNaN", "IsInf"),
        "Unary", False,
        "DLA's Unary layer runs Abs only",
        DLA_DOC,
    ),
    Rule(
        "matrix-multiply", ("MatMul", "Gemm"), "MatrixMultiply", False,
        "TensorRT 10 removed IFullyConnectedLayer: the parser makes MatrixMultiply, which DLA does not run "
        "(--fix turns MatMul/Gemm with constant weights into a 1x1 Convolution)",
        PARSER_DOC + "; " + DLA_DOC, CONSERVATIVE,
    ),
    Rule(
        "reduce",
        ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"),
        "Reduce", False,
        "Reduce is not a DLA layer (--fix turns a ReduceMean over H, W into AveragePools)",
        DLA_DOC,
    ),
    Rule(
        "normalization", ("InstanceNormalization", "LayerNormalization", "GroupNormalization"),
        "Normalization", False,
        "not a DLA layer (replace GroupNorm/InstanceNorm by BatchNorm in the network)",
        DLA_DOC,
    ),
    Rule(
        "quantize", ("QuantizeLinear", "DequantizeLinear"), "Quantize", True,
        "a Q->DQ pair (int8, zero point 0, one scale per tensor) is that tensor's INT8 scale and a DQ of "
        "constant weights folds into its layer: TensorRT 10 takes them on DLA as calibration-cache scales "
        "(build-engine translates them), 11.4+ as a strongly typed INT8 network. Other placements "
        "(per-channel activations, uint8 or asymmetric, a Q feeding a layer) stay on the GPU (dla/qdq.py)",
        "NVIDIA/Model-Optimizer#1661 and NVIDIA/TensorRT#2222 (DLA takes implicit INT8 scales), "
        "Deep-Learning-Accelerator-SW qdq-translator, TensorRT 11.4.1 'Strongly Typed Networks for DLA'",
    ),
    Rule(
        "gpu-only",
        ("Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Pad", "TopK",
         "NonMaxSuppression", "NonZero", "Where", "Expand", "Tile", "Range", "Cast", "CastLike", "ArgMax",
         "ArgMin", "CumSum", "Einsum", "GridSample", "RoiAlign", "Loop", "If", "Scan", "Shape", "Size",
         "ConstantOfShape", "DepthToSpace", "SpaceToDepth", "And", "Or", "Xor", "Mod", "OneHot",
         "ReverseSequence", "Trilu", "LSTM", "GRU", "RNN", "EyeLike", "RandomNormal", "RandomUniform",
         "RandomNormalLike", "RandomUniformLike", "Compress", "Unique", "GreaterOrEqual", "LessOrEqual"),
        None, False,
        "no DLA implementation: gather/scatter/padding/top-k/NMS/shape and index computations run on the GPU",
        DLA_DOC + " (Gather, Pad, TopK, NMS, dynamic shapes: not on DLA)",
    ),
)

UNKNOWN_OP_RULE = Rule(
    "unknown-op", (), None, False,
    "no DLA rule for this operator: assumed to run on the GPU",
    PROJECT, CONSERVATIVE,
)

RULES_BY_OP: dict[str, Rule] = {op: rule for rule in LAYER_RULES for op in rule.ops}
GENERAL_RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in GENERAL_RULES}


def rule_for(op_type: str) -> Rule:
    return RULES_BY_OP.get(op_type, UNKNOWN_OP_RULE)


# --- TensorRT lines -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrtLine:
    """What one range of TensorRT versions offers for DLA."""

    first: tuple[int, int]
    last: tuple[int, int]  # inclusive
    dla: bool
    strongly_typed_only: bool
    note: str


TRT_LINES: tuple[TrtLine, ...] = (
    TrtLine((8, 0), (8, 6), True, False, "TensorRT 8 (JetPack 5): DLA with FP16/INT8 builder flags"),
    TrtLine((10, 0), (10, 7), True, False,
            "TensorRT 10.0-10.7 (JetPack 6 ships 10.3): DLA with FP16/INT8 builder flags and GPU fallback"),
    TrtLine((10, 8), (10, 99), True, False,
            "TensorRT 10.8+: 10.7 was the last desktop release with DLA; DLA on this line is unverified, "
            "the 10.x rules are applied"),
    TrtLine((11, 0), (11, 3), False, False, "TensorRT 11.0-11.3 dropped DLA: everything runs on the GPU"),
    TrtLine((11, 4), (11, 99), True, True,
            "TensorRT 11.4.1+ (AGX Orin, JetPack 7.2.2+): DLA for strongly typed networks only, no INT8/FP16 "
            "builder flags, no calibrators"),
)

DEFAULT_TRT_VERSION = "10.3"


def parse_trt_version(text: str) -> tuple[int, int]:
    """'10.3' or '10.3.0.26' -> (10, 3); ValueError for anything else."""
    parts = str(text).strip().split(".")
    try:
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"TensorRT version must look like 10.3, got {text!r}") from None
    return major, minor


def trt_line(version: tuple[int, int]) -> TrtLine:
    for line in TRT_LINES:
        if line.first <= version <= line.last:
            return line
    known = ", ".join(f"{a[0]}.{a[1]}-{b[0]}.{b[1]}" for a, b in ((x.first, x.last) for x in TRT_LINES))
    raise ValueError(f"TensorRT {version[0]}.{version[1]} is not a line this check knows ({known})")
