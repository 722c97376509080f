"""k-means, prototype difficulty and pruning, SemDeDup, MinHash as a stage."""
