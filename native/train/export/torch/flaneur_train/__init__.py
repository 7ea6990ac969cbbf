"""Flaneur's exported training program (DINO / Dora under torchrun). Versioned with the app: see README.md."""
