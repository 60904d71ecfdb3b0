"""Data-quality ablations: pre-train per cell, pick the best checkpoint by validation loss, fine-tune/probe, tabulate."""
