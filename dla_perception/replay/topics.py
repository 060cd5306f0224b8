"""A user's own bag in one line: its camera topics, namespace and ground truth mapped to the graph's names.

`--camera-topics LEFT RIGHT [LEFT_INFO RIGHT_INFO]` becomes four remaps; camera models default to the
image_transport convention (`camera_info` beside the image: `/zed/left/image_rect_color` ->
`/zed/left/camera_info`). A single topic is a monocular camera for the detector. (`--namespace` and the
ground-truth topic are resolved by InputBag, which knows the bag's topics.)
"""

from __future__ import annotations

from collections.abc import Sequence

from dla_perception.replay import bag as bagmod


class TopicError(ValueError):
    """Camera topics or a namespace that cannot be mapped: a message for the user."""


def camera_info_beside(image_topic: str) -> str:
    """The camera_info topic image_transport pairs with an image topic: same namespace, `camera_info`."""
    parent, _, _ = image_topic.strip("/").rpartition("/")
    return f"{parent}/camera_info" if parent else "camera_info"


def camera_remaps(camera_topics: Sequence[str] | None) -> list[str]:
    """`FROM:=TO` remaps for --camera-topics (1 topic: mono; 2: stereo images; 4: images and models)."""
    if not camera_topics:
        return []
    topics = [t.strip() for t in camera_topics]
    if any(not t.strip("/") for t in topics):
        raise TopicError(f"empty camera topic in {list(camera_topics)}")
    if len(topics) == 1:
        return [f"{topics[0]}:={bagmod.MONO_IMAGE}"]
    if len(topics) == 2:
        topics += [camera_info_beside(topics[0]), camera_info_beside(topics[1])]
    if len(topics) != 4:
        raise TopicError("--camera-topics takes IMAGE (one camera), LEFT RIGHT, or LEFT RIGHT LEFT_INFO "
                         f"RIGHT_INFO; got {len(topics)} topics")
    if len({t.strip("/") for t in topics}) != 4:
        raise TopicError(f"--camera-topics names one topic twice: {topics}")
    targets = (bagmod.LEFT_IMAGE, bagmod.RIGHT_IMAGE, bagmod.LEFT_INFO, bagmod.RIGHT_INFO)
    return [f"{source}:={target}" for source, target in zip(topics, targets, strict=True)]
