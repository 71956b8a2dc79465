"""Data: sample photos, image reading, WebDataset shards."""
