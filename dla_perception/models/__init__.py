"""Task pipelines without ROS: proximity segmentation (stereo -> near masks) and detection."""
