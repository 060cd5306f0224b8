"""Install the data files of a built wheel (share/ament_index, share/dla_perception) into a prefix.

Setuptools' editable installs skip `data_files`, so `make setup` builds the real wheel from setup.py and
unpacks only its `.data/data/` part into the venv: the same files `colcon build` installs on a robot,
taken from the same declaration, which makes the venv a prefix the ament index can search.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath


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


if __name__ == "__main__":
    wheel_path, prefix_path = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(prefix_path / "share" / "dla_perception", ignore_errors=True)
    print(f"installed {install(wheel_path, prefix_path)} share files into {prefix_path}")
