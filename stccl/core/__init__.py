"""The method: backbone, metric network, correlation features, STCCL loss, metric training, diagnostic."""
