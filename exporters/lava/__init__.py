"""lava."""
