"""The installed package is a real ROS 2 package: ament index, share files, entry points, CLI."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


# -- the venv as a ROS prefix (issue 18.1) -------------------------------------------------------------
def _console_scripts() -> dict[str, str]:
    from test_launch_graph import console_scripts

    return console_scripts()


def _without_ament(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "AMENT_PREFIX_PATH"}
    return {**env, **extra}


def test_the_venv_has_lib_package_executables_as_colcon_lays_them_out() -> None:
    """launch_ros runs <prefix>/lib/<package>/<executable>: one launcher per setup.py console script."""
    folder = Path(sys.prefix) / "lib" / PACKAGE
    if not folder.is_dir():
        pytest.skip(f"{folder} missing: this interpreter is not `make setup`'s venv")
    scripts = _console_scripts()
    assert sorted(p.name for p in folder.iterdir()) == sorted(scripts)
    for name, target in scripts.items():
        launcher = folder / name
        assert os.access(launcher, os.X_OK), launcher
        module, function = target.split(":")
        text = launcher.read_text()
        assert text.startswith(f"#!{Path(sys.prefix).resolve() / 'bin' / 'python'}\n")
        assert f"from {module} import {function}\n" in text and f"sys.exit({function}())" in text


def test_a_launcher_runs_without_ament_prefix_path() -> None:
    launcher = Path(sys.prefix) / "lib" / PACKAGE / "dla-perception"
    if not launcher.exists():
        pytest.skip(f"{launcher} missing: this interpreter is not `make setup`'s venv")
    result = subprocess.run([str(launcher), "devices", "--json"], capture_output=True, text=True, timeout=60,
                            env=_without_ament())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cores"][-1] == "cpu"


def test_share_files_are_found_without_ament_prefix_path_and_the_index_wins_when_set(tmp_path) -> None:
    code = "from dla_perception.share import share_path; print(share_path('config/engines.yaml'))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env=_without_ament())
    assert found.returncode == 0, found.stderr
    path = Path(found.stdout.strip())
    assert path.is_file() and path.read_bytes() == (REPO_ROOT / "config" / "engines.yaml").read_bytes()
    # Another prefix on AMENT_PREFIX_PATH that has the package: the ament index's answer is used.
    other = tmp_path / "prefix"
    (other / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (other / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).write_text("")
    (other / "share" / PACKAGE / "config").mkdir(parents=True)
    (other / "share" / PACKAGE / "config" / "engines.yaml").write_text("models: {}\n")
    indexed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env=_without_ament(AMENT_PREFIX_PATH=str(other)))
    expected = other / "share" / PACKAGE / "config" / "engines.yaml"
    assert Path(indexed.stdout.strip()) == expected, indexed.stderr
