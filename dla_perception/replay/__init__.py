"""Rosbag replay testing: bags fed deterministically through the real nodes, metrics and a report."""
