"""`dla-perception dla-check MODEL.onnx`: which layers will leave the DLA, and the rewrites that fix them.

Exit codes: 0 done; 1 with --strict when a layer falls back to the GPU (in the fixed model with --fix),
or when an exact rewrite changed the outputs (nothing is written then); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dla-check",
        help="predict which ONNX layers run on DLA or fall back to the GPU, and fix what can be fixed",
        description="Analyse an ONNX model against the documented DLA restrictions of a TensorRT line: per "
        "node DLA or GPU with the reason, the DLA subgraphs (loadables), the DLA<->GPU boundaries and a "
        "verdict. With --fix, write a rewritten model that keeps the network's function (verified in "
        "onnxruntime) and report the counts before and after.",
    )
    parser.add_argument("model", type=Path, help="ONNX model to analyse")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--trt", default="10.3", metavar="VERSION", help="TensorRT line (default: 10.3)")
    parser.add_argument(
        "--precision", choices=("fp16", "int8"), default="fp16", help="DLA build precision (default fp16)"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:1x3x416x416",
        help="fix a dynamic input's shape (repeatable), as a TensorRT profile with min = opt = max; "
        "with --fix the written model gets these static shapes",
    )
    parser.add_argument("--fix", type=Path, metavar="OUT.onnx", help="write the rewritten model here")
    parser.add_argument(
        "--approximate",
        action="store_true",
        help="with --fix, also apply rewrites that change results slightly (linear Resize -> nearest)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any layer falls back to the GPU")
    parser.add_argument("--verbose", action="store_true", help="list every node, not only the GPU ones")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dla_perception.dla.analysis import analyze
    from dla_perception.tools.cli import UsageError

    if args.approximate and not args.fix:
        raise UsageError("--approximate only applies with --fix OUT.onnx")
    args.input_shapes = parse_input_shapes(args.input_shape)
    try:
        report = analyze(args.model, args.trt, args.precision, args.input_shapes)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    result = report.to_dict()
    final = report
    status = 0
    if args.fix:
        fix, final, status = _fix(args, report)
        result["fix"] = fix
    if args.json:
        print(json.dumps(result))
    else:
        print(report.format_text(verbose=args.verbose))
        if args.fix:
            _print_fix(result["fix"])
    if status:
        return status
    return 1 if args.strict and not final.passes_strict else 0


def parse_input_shapes(texts: list[str]) -> dict[str, list[int]]:
    """["images:1x3x416x416"] -> {"images": [1, 3, 416, 416]}; UsageError for anything else."""
    from dla_perception.tools.cli import UsageError

    shapes = {}
    for text in texts:
        name, _, dims = text.rpartition(":")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shape = []
        if not name or not shape or min(shape) < 1:
            raise UsageError(f"--input-shape expects NAME:1x3x416x416, got {text!r}")
        shapes[name] = shape
    return shapes


def _fix(args: argparse.Namespace, before) -> tuple[dict, object, int]:
    import onnx

    from dla_perception.dla.analysis import analyze
    from dla_perception.dla.fixes import fix_model
    from dla_perception.dla.graph import load_model
    from dla_perception.dla.verify import compare

    original, _ = load_model(args.model)
    exact, approximated = fix_model(original, approximate=args.approximate, input_shapes=args.input_shapes)
    verification = compare(original, exact.model)
    summary = {
        "output": str(args.fix),
        "applied": [r.as_dict() for r in exact.applied + approximated.applied],
        "skipped": exact.skipped + approximated.skipped,
        "verification": verification.as_dict(),
        "approximation": None,
        "before": before.counts(),
    }
    if args.approximate:
        summary["approximation"] = compare(exact.model, approximated.model, tolerance=float("inf")).as_dict()
    after = analyze(approximated.model, args.trt, args.precision)
    after.model = str(args.fix)
    summary["after"] = after.counts()
    summary["verdict_after"] = after.verdict
    if not verification.passed:
        summary["written"] = False
        return summary, after, 1
    args.fix.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(approximated.model, str(args.fix))
    summary["written"] = True
    return summary, after, 0


def _print_fix(fix: dict) -> None:
    print(f"fix: {len(fix['applied'])} rewrite(s)")
    for rewrite in fix["applied"]:
        kind = "exact" if rewrite["exact"] else "approximate"
        print(f"  {rewrite['fix']:<24} {rewrite['node']}: {rewrite['detail']} ({kind})")
    for reason in fix["skipped"]:
        print(f"  not rewritten: {reason}")
    check = fix["verification"]
    state = "ok" if check["passed"] else "FAILED"
    print(f"exact rewrites verified in onnxruntime: max abs diff {check['max_abs_diff']:.3g} ({state})")
    if fix["approximation"]:
        print(f"approximate rewrites change outputs by up to {fix['approximation']['max_abs_diff']:.3g}")
    before, after = fix["before"], fix["after"]
    for key in ("layers", "dla_layers", "gpu_layers", "subgraphs", "boundaries"):
        print(f"  {key:<11} {before[key]:>5} -> {after[key]}")
    print("after: " + fix["verdict_after"])
    if fix["written"]:
        print(f"written: {fix['output']}")
    else:
        print("NOT written: an exact rewrite changed the outputs")
