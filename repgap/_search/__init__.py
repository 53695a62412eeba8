"""The exact k-NN engine (placeholder essay; see engine.py)."""
