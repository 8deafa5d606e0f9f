"""Small shared helpers: atomic file writes, typed configs."""
