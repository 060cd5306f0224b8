"""The replay's output bag: every output message, serialized as received, at its input frame's bag time.

Written incrementally, so a replay that stops early (a truncated input bag, Ctrl-C) still leaves a valid
bag of what was produced: `close()` writes metadata.yaml and is safe to call twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dla_perception.replay.messages import typestore

BAG_VERSION = 8  # rosbag2 metadata version rosbags writes that Humble and Jazzy both read


class OutputBag:
    def __init__(self, path: Path, storage: str = "sqlite3") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            if not (self.path / "metadata.yaml").exists() and any(self.path.iterdir()):
                raise FileExistsError(f"{self.path} exists and is not a bag; refusing to overwrite it")
            shutil.rmtree(self.path)  # a previous replay's output bag in the same --out folder
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._closed = False

    def write(self, topic: str, msgtype: str, log_time_ns: int, raw: bytes) -> None:
        """Adds one CDR message; the topic's connection is made on its first message.

        Topics are stored fully qualified (`/proximity/mask`), as `ros2 bag record` does.
        """
        topic = "/" + topic.lstrip("/")
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = connection
        self._writer.write(connection, log_time_ns, raw)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
