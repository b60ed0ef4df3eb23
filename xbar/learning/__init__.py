"""Learning on crossbars: neurons, in-situ plasticity and hardware-aware training (not yet built)."""
