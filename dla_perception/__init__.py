"""dla_perception: DLA-first robot perception for ROS 2 on NVIDIA Jetson.

Layers, one way down: nodes -> models -> runtime. The core (runtime, models, synthetic, dla) never
imports rclpy; only `nodes` and `replay` do.
"""

__version__ = "0.1.0"
