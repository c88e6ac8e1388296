"""Data: Fashion-MNIST (IDX files), sklearn digits, and the synthetic text corpus."""

# The image data sets, by name (here so that the command line lists them without importing torch).
DATASETS = ("fashion-mnist", "digits")
