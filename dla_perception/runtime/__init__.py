"""Inference cores, engines, the engine manager and latency statistics. No ROS, no task knowledge."""
