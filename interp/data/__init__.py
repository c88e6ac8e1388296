"""Data: Fashion-MNIST (IDX files), sklearn digits, and the synthetic text corpus."""
