"""`dla-perception devices`: which cores this machine offers and which inference stacks it found."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list the inference cores (dla0, dla1, gpu, cpu) and stack versions found here",
        description="List the inference cores this machine has and the versions of onnxruntime, "
        "TensorRT, CUDA and rclpy. Missing stacks are reported, never fatal.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dla_perception.runtime.cores import discover

    inventory = discover()
    if args.json:
        print(json.dumps(inventory.as_dict(), sort_keys=True))
        return 0
    print("cores: " + " ".join(inventory.cores))
    if inventory.gpu_name:
        print(f"gpu:   {inventory.gpu_name}")
    print("versions:")
    for name, probe in inventory.versions.items():
        version = probe.version or "not found"
        detail = f"  ({probe.detail})" if probe.detail else ""
        print(f"  {name:<12} {version}{detail}")
    return 0
