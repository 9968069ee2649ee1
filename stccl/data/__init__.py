"""Data: the synthetic renderer and its face model, the MEAD layout and loaders, DTW alignment."""
