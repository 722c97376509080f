"""Token accounting, the data-constrained scaling law, the mixture and epoch planner,
materialising a plan, and fitted mixtures (RegMix, DoReMi)."""
