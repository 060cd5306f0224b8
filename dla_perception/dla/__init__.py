"""DLA-compatibility analysis and function-preserving rewrites of ONNX graphs.

    from dla_perception.dla import analyze
    report = analyze("head.onnx", trt_version="10.3")
    report.passes_strict, report.gpu_nodes, report.subgraphs, report.boundaries, report.to_dict()
"""

from dla_perception.dla.analysis import Boundary, NodePlacement, Report, Subgraph, analyze

__all__ = ["Boundary", "NodePlacement", "Report", "Subgraph", "analyze"]
