"""package.xml tells rosdep the truth: every ROS package the code imports is declared, nothing unused is,
and each third-party Python module maps to its rosdep key (or to requirements/robot.txt where rosdistro
has no key)."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from conftest import REPO_ROOT

# Third-party modules -> the rosdep key package.xml must declare (ros/rosdistro rosdep/python.yaml).
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib", "onnxruntime": "python3-onnxruntime-pip",
}
# No key in rosdep/python.yaml: installed from requirements/robot.txt (their pip names).
NO_ROSDEP_KEY = {"onnx": "onnx", "onnx_graphsurgeon": "onnx-graphsurgeon", "polygraphy": "polygraphy",
                 "rosbags": "rosbags"}
# Optional, imported only where present: JetPack's TensorRT, the fleet replay's ray, training's torch.
OPTIONAL = {"tensorrt", "ray", "torch"}
# ROS packages that have no PyPI wheel here (so no "ros-*" distribution to recognise them by).
ROS_WITHOUT_WHEELS = {"launch", "launch_ros", "launch_testing", "launch_testing_ros", "vision_msgs"}


def imported_modules(folders: list[Path]) -> set[str]:
    found = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def ros_packages(modules: set[str]) -> set[str]:
    """The modules that are ROS packages: provided by a ros-* wheel here, or known to have none."""
    distributions = importlib.metadata.packages_distributions()
    return {m for m in modules
            if m in ROS_WITHOUT_WHEELS or any(d.startswith("ros-") for d in distributions.get(m, []))}


def declared(kind: str) -> set[str]:
    root = ElementTree.parse(REPO_ROOT / "package.xml").getroot()
    return {element.text.strip() for element in root.iter(kind)}


def _local(modules: set[str]) -> set[str]:
    """Without the standard library and this repository's own modules."""
    own = {"dla_perception", "training", "benchmarks"} | {p.stem for p in (REPO_ROOT / "test").rglob("*.py")}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in own}


def test_every_imported_ros_package_is_an_exec_depend_and_nothing_else_is() -> None:
    code = _local(imported_modules([REPO_ROOT / "dla_perception", REPO_ROOT / "launch"]))
    ros = ros_packages(code)
    exec_ros = {d for d in declared("exec_depend") if not d.startswith("python3-")}
    assert exec_ros == ros, f"declare {sorted(ros - exec_ros)}; unused {sorted(exec_ros - ros)}"


def test_third_party_python_modules_have_their_rosdep_key_or_a_requirement() -> None:
    code = _local(imported_modules([REPO_ROOT / "dla_perception", REPO_ROOT / "launch"]))
    third_party = code - ros_packages(code) - OPTIONAL
    unknown = third_party - set(ROSDEP_KEYS) - set(NO_ROSDEP_KEY)
    assert not unknown, f"map these to a rosdep key or requirements/robot.txt: {sorted(unknown)}"
    keys = {d for d in declared("exec_depend") if d.startswith("python3-")}
    assert keys == {ROSDEP_KEYS[m] for m in third_party & set(ROSDEP_KEYS)}
    robot = (REPO_ROOT / "requirements" / "robot.txt").read_text()
    requirements = {line.split(">")[0].split("=")[0].strip() for line in robot.splitlines()
                    if line.strip() and not line.startswith("#")}
    assert {NO_ROSDEP_KEY[m] for m in third_party & set(NO_ROSDEP_KEY)} | {"rosbags-image"} <= requirements


def test_test_imports_are_declared() -> None:
    tests = _local(imported_modules([REPO_ROOT / "test"]))
    ros = ros_packages(tests)
    everything = declared("exec_depend") | declared("test_depend")
    assert ros <= everything, f"declare as test_depend: {sorted(ros - everything)}"
    test_only = declared("test_depend") - {"python3-pytest"}
    assert test_only <= ros, f"unused test_depend: {sorted(test_only - ros)}"
