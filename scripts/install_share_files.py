"""Make a venv a ROS 2 prefix like `colcon build` makes install/: share files and lib/<package>/ executables.

    python scripts/install_share_files.py build/wheel/dla_perception-*.whl .venv

Setuptools' editable installs skip `data_files`, so `make setup` builds the real wheel from setup.py and
unpacks only its `.data/data/` part into the venv: the same files `colcon build` installs on a robot,
taken from the same declaration, which makes the venv a prefix the ament index can search. And it writes
`<prefix>/lib/dla_perception/<script>` for every console script of the wheel (what setup.cfg's
`install_scripts=$base/lib/dla_perception` gives colcon), because launch_ros starts a node as
`<prefix>/lib/<package>/<executable>`: without them `ros2 launch` from the venv fails ("libexec directory
... does not exist").
"""

from __future__ import annotations

import configparser
import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "dla_perception"

LAUNCHER = '''#!{python}
# Written by scripts/install_share_files.py (make setup), as colcon installs console scripts.
import sys

from {module} import {function}

if __name__ == "__main__":
    sys.exit({function}())
'''


def install(wheel: Path, prefix: Path) -> int:
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            parts = PurePosixPath(name).parts
            if len(parts) < 3 or not parts[0].endswith(".data") or parts[1] != "data":
                continue
            target = prefix.joinpath(*parts[2:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as source, open(target, "wb") as destination:
                shutil.copyfileobj(source, destination)
            count += 1
    return count


def console_scripts(wheel: Path) -> dict[str, str]:
    """{script: "module:function"} from the wheel's entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # script names are case-sensitive
        parser.read_string(archive.read(name).decode())
    return {script: target.strip() for script, target in parser["console_scripts"].items()}


def install_executables(wheel: Path, prefix: Path, python: Path) -> list[Path]:
    """<prefix>/lib/<package>/<script> launchers running `python`, one per console script."""
    folder = prefix / "lib" / PACKAGE
    shutil.rmtree(folder, ignore_errors=True)  # no launcher left for a script that setup.py dropped
    folder.mkdir(parents=True)
    written = []
    for script, target in sorted(console_scripts(wheel).items()):
        module, _, function = target.partition(":")
        path = folder / script
        path.write_text(LAUNCHER.format(python=python, module=module, function=function))
        path.chmod(0o755)
        written.append(path)
    return written


if __name__ == "__main__":
    wheel_path, prefix_path = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(prefix_path / "share" / PACKAGE, ignore_errors=True)
    print(f"installed {install(wheel_path, prefix_path)} share files into {prefix_path}")
    interpreter = prefix_path.resolve() / "bin" / "python"
    executables = install_executables(wheel_path, prefix_path, interpreter)
    print(f"installed {', '.join(p.name for p in executables)} into {prefix_path / 'lib' / PACKAGE}")
