"""Models: the bilinear layer, image classifiers, and the TransformerLens LM factory."""
