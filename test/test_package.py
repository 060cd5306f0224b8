"""The installed package is a real ROS 2 package: ament index, share files, entry points, CLI."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from ament_index_python.packages import get_package_share_directory, get_packages_with_prefixes
from conftest import REPO_ROOT

PACKAGE = "dla_perception"


def test_ament_index_finds_package() -> None:
    assert PACKAGE in get_packages_with_prefixes()
    share = Path(get_package_share_directory(PACKAGE))
    assert (share / "package.xml").read_text() == (REPO_ROOT / "package.xml").read_text()


def test_share_holds_every_launch_config_and_model_file() -> None:
    share = Path(get_package_share_directory(PACKAGE))
    expected = [
        path.relative_to(REPO_ROOT)
        for folder in ("launch", "config", "models")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    missing = [str(path) for path in expected if not (share / path).is_file()]
    assert not missing, f"not installed under {share} (re-run `make setup`): {missing}"
    stale = [str(path) for path in expected if (share / path).read_bytes() != (REPO_ROOT / path).read_bytes()]
    assert not stale, f"installed copies differ from the tree (re-run `make setup`): {stale}"


def test_every_entry_point_imports() -> None:
    entry_points = [
        ep for ep in importlib.metadata.distribution(PACKAGE).entry_points if ep.group == "console_scripts"
    ]
    assert "dla-perception" in {ep.name for ep in entry_points}
    for entry_point in entry_points:
        assert callable(entry_point.load()), entry_point.name


def test_devices_json_reports_cpu() -> None:
    script = Path(sys.executable).parent / "dla-perception"
    result = subprocess.run([str(script), "devices", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cores"][-1] == "cpu"
    assert set(report["versions"]) == {"onnxruntime", "tensorrt", "cuda", "rclpy"}
    assert report["versions"]["onnxruntime"]  # installed by `make setup`
    assert set(report["cores"]) <= {"dla0", "dla1", "gpu", "cpu"}


def test_devices_table_names_each_stack() -> None:
    from dla_perception.tools.cli import main

    assert main(["devices"]) == 0
