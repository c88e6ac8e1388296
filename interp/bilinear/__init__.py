"""Reading bilinear layers from their weights: tensors, interaction matrices, eigendecompositions."""
