"""Compact memristor models driven by voltage waveforms."""
