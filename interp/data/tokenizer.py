"""A word-level tokenizer with a BOS token, saved as JSON beside each language model.

Text is split on whitespace; every word must be in the vocabulary (no unknown-word token: a word
the model has never seen is bad input, not something to paper over). `encode` prepends BOS by
default, as circuit-tracer and TransformerLens do.
"""

from __future__ import annotations

from pathlib import Path

from interp.errors import InterpError
from interp.io import read_json, write_json

BOS = "<bos>"
TOKENIZER_FILE = "tokenizer.json"


class WordTokenizer:
    """Maps whitespace-separated words to ids; id 0 is BOS."""

    def __init__(self, words: list[str]):
        vocab = [BOS] + [w for w in words if w != BOS]
        if len(set(vocab)) != len(vocab):
            raise InterpError("tokenizer vocabulary has duplicate words; rebuild it")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.bos_id = 0

    def __len__(self) -> int:
        return len(self.vocab)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self.vocab == other.vocab

    def tokens(self, text: str, prepend_bos: bool = True) -> list[str]:
        """The words of `text` as the model sees them (for display), BOS first by default."""
        words = text.split()
        unknown = [w for w in words if w not in self.index]
        if unknown:
            shown = ", ".join(repr(w) for w in dict.fromkeys(unknown))
            raise InterpError(f"unknown word(s) {shown}: use words from the model's tokenizer.json vocabulary")
        return ([BOS] if prepend_bos else []) + words

    def encode(self, text: str, prepend_bos: bool = True) -> list[int]:
        return [self.index[w] for w in self.tokens(text, prepend_bos)]

    def token_id(self, word: str) -> int:
        """The id of one word (a target or contrast token)."""
        word = word.strip()
        if word not in self.index:
            raise InterpError(f"unknown word {word!r}: use a word from the model's tokenizer.json vocabulary")
        return self.index[word]

    def decode(self, ids: list[int], skip_bos: bool = True) -> str:
        bad = [i for i in ids if not 0 <= int(i) < len(self.vocab)]
        if bad:
            raise InterpError(f"token id(s) {bad[:5]} outside the vocabulary of {len(self.vocab)} words")
        return " ".join(self.vocab[int(i)] for i in ids if not (skip_bos and int(i) == self.bos_id))

    def to_dict(self) -> dict:
        return {"type": "word", "bos": BOS, "vocab": self.vocab}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "WordTokenizer":
        data = read_json(path, what="tokenizer")
        if not isinstance(data, dict) or data.get("type") != "word" or not isinstance(data.get("vocab"), list):
            raise InterpError(f"{path} is not a word tokenizer (expected type 'word' and a vocab list)")
        if not data["vocab"] or data["vocab"][0] != BOS:
            raise InterpError(f"{path}: the first vocabulary entry must be {BOS!r}")
        return cls(data["vocab"][1:])
