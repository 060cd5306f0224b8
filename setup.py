"""ament_python package: `colcon build` on a robot, `pip install -e .` in the Makefile's venv."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dla_perception"


def share_files(*folders: str) -> list[tuple[str, list[str]]]:
    """Every file under the folders, installed under share/<package>/ with its relative path kept."""
    entries: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(glob(os.path.join(folder, "**", "*"), recursive=True)):
            if os.path.isfile(path) and "__pycache__" not in path:
                target = os.path.join("share", PACKAGE, os.path.dirname(path))
                entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "training", "training.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch", "config", "models"),
    ],
    python_requires=">=3.10",
    # The ROS 2 wheels, onnxruntime and OpenCV are deliberately absent: on a robot they come from apt or
    # JetPack (onnxruntime-gpu, CUDA-enabled cv2) and a pip copy would shadow them. requirements/ has them.
    install_requires=[
        "setuptools",
        "numpy",
        "pyyaml",
        "onnx",
        "onnx-graphsurgeon",
        "polygraphy",
        "rosbags",
        "rosbags-image",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "cpu": ["onnxruntime", "opencv-python-headless"],
        "training": ["torch"],
        # Fleet replay on Ray (`dla-perception replay BAGS --workers N` / `--ray-address`).
        "fleet": ["ray>=2.40"],
    },
    zip_safe=True,
    maintainer="dla_perception maintainers",
    maintainer_email="maintainers@dla-perception.invalid",
    description="DLA-first robot perception for ROS 2 on NVIDIA Jetson",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "dla-perception = dla_perception.tools.cli:main",
            "engine_manager = dla_perception.nodes.engine_manager:main",
            "proximity_segmentation = dla_perception.nodes.proximity:main",
            "detection = dla_perception.nodes.detection:main",
            "perception_container = dla_perception.nodes.container:main",
        ],
    },
)
