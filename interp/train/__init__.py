"""Training loops: image classifiers, language models, transcoders and attention SAEs."""
