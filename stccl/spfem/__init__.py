"""SPFEM: the generator, its auxiliary nets and config, training, evaluation on ground truth, scores."""
