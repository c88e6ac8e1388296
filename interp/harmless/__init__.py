"""Harmless-perturbation subspaces for linear, ReLU, conv and bilinear layers."""
