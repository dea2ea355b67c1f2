"""Source readers: each yields batches of (position, row, version source) after a checkpoint state."""
