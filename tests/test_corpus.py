"""The synthetic corpus, its held-out task sets and the word tokenizer."""

from __future__ import annotations

import random

import pytest

from interp.data import corpus
from interp.data.tokenizer import BOS, WordTokenizer
from interp.errors import InterpError


def test_tokenizer_roundtrip_and_bos(tmp_path):
    tok = corpus.make_tokenizer()
    text = "when Mary and John went to the store , John gave a book to"
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id and tok.vocab[0] == BOS
    assert tok.decode(ids) == text
    assert tok.tokens(text)[1:] == text.split()
    tok.save(tmp_path / "tokenizer.json")
    assert WordTokenizer.load(tmp_path / "tokenizer.json") == tok


def test_tokenizer_rejects_unknown_words():
    tok = corpus.make_tokenizer()
    with pytest.raises(InterpError, match="unknown word"):
        tok.encode("Mary gave a zebra to John")
    with pytest.raises(InterpError, match="unknown word"):
        tok.token_id("zebra")


def test_tokenizer_rejects_a_file_that_is_not_one(tmp_path):
    (tmp_path / "t.json").write_text('{"type": "bpe"}')
    with pytest.raises(InterpError, match="not a word tokenizer"):
        WordTokenizer.load(tmp_path / "t.json")


def test_corpus_is_seeded_and_in_vocabulary():
    tok = corpus.make_tokenizer()
    a = corpus.training_tokens(tok, 20, 32, seed=3)
    b = corpus.training_tokens(tok, 20, 32, seed=3)
    c = corpus.training_tokens(tok, 20, 32, seed=4)
    assert a == b and a != c
    assert all(len(row) == 32 and row[0] == tok.bos_id for row in a)


def test_training_text_contains_every_task():
    words = corpus.training_document(random.Random(0), 3000)
    text = " ".join(words)
    assert "list :" in text  # induction
    assert " gave " in text and " to " in text  # IOI
    assert any(b in words for b in corpus.BRACKETS)


def test_ioi_heldout_split_never_seen_in_ioi_training():
    train_names = set(corpus.NAMES[:corpus.N_TRAIN_NAMES])
    heldout_names = set(corpus.NAMES[corpus.N_TRAIN_NAMES:])
    assert len(heldout_names) >= 8 and not train_names & heldout_names
    rng = random.Random(0)
    fillers = []
    for _ in range(300):
        prompt, io, s = corpus.ioi_sentence(rng, "train")
        assert io in train_names | set(corpus.IOI_OTHER_FILLERS) and s in train_names | set(corpus.IOI_OTHER_FILLERS)
        assert not heldout_names & set(prompt.split())
        fillers.append(io in corpus.IOI_OTHER_FILLERS or s in corpus.IOI_OTHER_FILLERS)
    assert 0.3 < sum(fillers) / len(fillers) < 0.8  # other words fill the name slots in about half
    for ex in corpus.ioi_examples(100):
        assert ex.target not in train_names and ex.contrast not in train_names
        assert ex.prompt.split().count(ex.contrast) == 2 and ex.prompt.split().count(ex.target) == 1
    train_templates = {t.split("{")[0] + t.split("}")[-1] for t in corpus.IOI_TRAIN_TEMPLATES}
    assert not set(corpus.IOI_EVAL_TEMPLATES) & set(corpus.IOI_TRAIN_TEMPLATES)
    assert train_templates  # templates differ in wording, not only in slots


def test_bracket_examples_close_the_innermost_open_bracket():
    closers = {v: k for k, v in corpus.BRACKETS.items()}
    for ex in corpus.bracket_examples(100):
        stack = []
        for w in ex.prompt.split():
            if w in corpus.BRACKETS:
                stack.append(w)
            elif w in closers:
                assert stack.pop() == closers[w]
        assert corpus.BRACKETS[stack[-1]] == ex.target
        assert ex.contrast != ex.target and ex.contrast in closers


def test_induction_examples_target_the_copied_word():
    for ex in corpus.induction_examples(50):
        _, first, second = ex.prompt.split("list : ")
        span = first.split(" .")[0].split()
        shown = second.split()
        assert span[:len(shown)] == shown and span[len(shown)] == ex.target


def test_task_examples_unknown_task():
    with pytest.raises(InterpError, match="unknown task"):
        corpus.task_examples("arithmetic")
