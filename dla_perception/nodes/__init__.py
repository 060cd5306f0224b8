"""Thin rclpy nodes: messages in, call the core, messages out."""
