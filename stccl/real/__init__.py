"""Real videos: video I/O, dlib face tools, MEAD-style preparation, SyncNet, published-clip evaluation."""
