"""The synthetic corpus, its held-out task sets and the word tokenizer."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from interp.data import corpus
from interp.data.tokenizer import BOS, WordTokenizer
from interp.errors import InterpError

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


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
    def wording(template):  # the template with every slot blanked
        return re.sub(r"\{\w+\}", "_", template)

    # held-out templates differ from every training one in wording, not only in slot names
    assert not {wording(t) for t in corpus.IOI_EVAL_TEMPLATES} & {wording(t) for t in corpus.IOI_TRAIN_TEMPLATES}


CLOSERS = {v: k for k, v in corpus.BRACKETS.items()}


def open_brackets(prompt: str) -> list[str]:
    """The brackets still open at the end of `prompt`, innermost last; every closer must match its opener."""
    stack = []
    for w in prompt.split():
        if w in corpus.BRACKETS:
            stack.append(w)
        elif w in CLOSERS:
            assert stack.pop() == CLOSERS[w], prompt
    return stack


def test_bracket_examples_close_the_innermost_open_bracket():
    for ex in corpus.bracket_examples(100):
        assert corpus.BRACKETS[open_brackets(ex.prompt)[-1]] == ex.target
        assert ex.contrast != ex.target and ex.contrast in CLOSERS


def test_induction_examples_target_the_copied_word():
    for ex in corpus.induction_examples(50):
        _, first, second = ex.prompt.split("list : ")
        span = first.split(" .")[0].split()
        shown = second.split()
        assert span[:len(shown)] == shown and span[len(shown)] == ex.target


def test_task_examples_unknown_task():
    with pytest.raises(InterpError, match="unknown task"):
        corpus.task_examples("arithmetic")


# ---------------------------------------------------------------- the structural corpus (issue #18)

STRUCTURAL = corpus.CorpusConfig(kind="structural", bracket_depth=6)


def _family_pattern(template: str) -> re.Pattern:
    """A regex matching any filling of one clause template: name slots take any word, the others their pools."""
    pools = {"P": corpus.PLACES, "O": corpus.OBJECTS, "N": corpus.NOUNS, "V": corpus.VERBS}
    out = re.escape(template)
    for slot in ("A", "B", "S"):
        out = out.replace(re.escape("{" + slot + "}"), r"\S+")
    for slot, pool in pools.items():
        out = out.replace(re.escape("{" + slot + "}"), "(?:" + "|".join(pool) + ")")
    return re.compile(r"(?:^| )" + out + "(?: |$)")


def test_planted_corpus_is_the_default_and_unchanged():
    """The shipped checkpoints record no corpus options: they read back as the planted corpus, whose text is
    drawn exactly as before the structural options existed."""
    assert corpus.corpus_config_from_options({"arch": "bilinear", "wd": 2.0}) == corpus.CorpusConfig()
    for name in ("lm-bilinear", "lm-gelu"):
        options = json.loads((CHECKPOINTS / name / "config.json").read_text())["train_options"]
        assert corpus.corpus_config_from_options(options).kind == "planted"
    assert (corpus.training_document(random.Random(5), 500)
            == corpus.training_document(random.Random(5), 500, corpus.CorpusConfig()))
    # The text the planted corpus drew before the structural options existed, from that code (commit 6d12698):
    #   git show 6d12698:interp/data/corpus.py > old.py; sha256 of " ".join(old.training_document(Random(5), 3000))
    planted = " ".join(corpus.training_document(random.Random(5), 3000)).encode()
    assert hashlib.sha256(planted).hexdigest() == "41c8a7df8a43c0513d25fbccf28b2f0167ee60761f9efd09a1a69eac94eed781"
    structural = " ".join(corpus.training_document(random.Random(5), 500, STRUCTURAL))
    assert structural != " ".join(corpus.training_document(random.Random(5), 500))


def test_training_document_records_its_passages():
    """`passages` names each passage's kind and first word without changing the words drawn; each kind's passages
    have that kind's shape."""
    kinds = {None: {"ordinary", "ioi", "brackets", "listed"},
             STRUCTURAL: {"ordinary", "past", "ioi_composed", "ioi", "brackets", "listed", "repeat"}}
    for config, expected in kinds.items():
        passages: list = []
        words = corpus.training_document(random.Random(3), 4000, config, passages)
        assert words == corpus.training_document(random.Random(3), 4000, config)
        assert {kind for kind, _ in passages} == expected
        starts = [start for _, start in passages]
        assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < len(words)
        for (kind, start), end in zip(passages[:-1], starts[1:]):  # the last passage is cut at 4000 words
            passage = words[start:end]
            if kind == "listed":
                assert passage[:2] == ["list", ":"] and passage.count("list") == 2
            elif kind == "brackets":
                assert passage[-1] == ";" and ";" not in passage[:-1]
            elif kind in ("ordinary", "past"):
                assert passage[-1] == "." and "." not in passage[:-1], passage
            elif kind != "repeat":  # IOI: a sentence that may hold a full stop between its clauses
                assert passage[-1] == "." and len(passage) > 8, passage


def test_heldout_ioi_families_never_occur_in_structural_training_text():
    text = " ".join(corpus.training_document(random.Random(0), 60_000, STRUCTURAL))
    held = STRUCTURAL.ioi_heldout_families
    parts = {**corpus.IOI_INTROS, **corpus.IOI_GIVINGS}
    for family in held:
        assert not _family_pattern(parts[family]).search(text), family
    for family, template in parts.items():  # the check can fire: every training family occurs in the same text
        if family not in held:
            assert _family_pattern(template).search(text), family
    # "met" is read before a name in ordinary sentences (never in a held-out frame, checked above)
    names = "|".join(corpus.NAMES)
    assert re.search(rf"(?:^| )met (?:{names}) (?:\.|{'|'.join(corpus.PREPOSITIONS + corpus.ADVERBS)})", text)
    # and every held-out evaluation prompt is made of at least one held-out family
    for ex in corpus.ioi_frame_examples(STRUCTURAL, 100):
        assert any(_family_pattern(parts[f]).search(ex.prompt) for f in held), ex.prompt
        intro, giving = ex.frame  # the recorded frame is the one its wording shows
        assert _family_pattern(parts[intro]).search(ex.prompt) and _family_pattern(parts[giving]).search(ex.prompt)
        assert {intro, giving} & set(held), ex.frame
        assert ex.target in corpus.NAMES[corpus.N_TRAIN_NAMES:] and ex.contrast in corpus.NAMES[corpus.N_TRAIN_NAMES:]
        assert ex.prompt.split().count(ex.contrast) == 2 and ex.prompt.split().count(ex.target) == 1


def test_structural_text_has_unmarked_repeats_and_every_bracket_depth():
    rng = random.Random(1)
    lengths = set()
    for _ in range(300):
        words = corpus.repeat_text(rng, STRUCTURAL)
        n = next(k for k in range(16, 1, -1) if len(words) >= 2 * k and words[:k] == words[len(words) - k:])
        lengths.add(n)
        assert "list" not in words
    assert min(lengths) <= 3 and max(lengths) >= 15  # spans of 2..16 words
    # about a fifth of the spans are cut from ordinary text (they hold a word outside the random-word pool: "the",
    # a verb, "."); the rest are pool words only
    pool = set(corpus.INDUCTION_POOL)
    ordinary = 0
    for _ in range(2000):
        words = corpus.repeat_text(rng, STRUCTURAL)
        n = next(k for k in range(16, 1, -1) if len(words) >= 2 * k and words[:k] == words[len(words) - k:])
        ordinary += any(w not in pool for w in words[:n])
    assert corpus.REPEAT_ORDINARY_SPAN_SHARE == 0.2 and 0.17 <= ordinary / 2000 <= 0.21, ordinary
    depths = set()
    for depth in range(1, 7):
        line = corpus.bracket_chain_line(rng, depth)
        deepest = level = 0
        for w in line:
            level += (w in corpus.BRACKETS) - (w in corpus.BRACKETS.values())
            deepest = max(deepest, level)
        assert deepest == depth and level == 0
        depths.add(deepest)
    assert depths == set(range(1, 7))


def test_structural_eval_sets_are_what_they_say():
    for kind in ("unmarked", "distractor", "long"):
        for text, positions in corpus.repeat_sequences(kind, 50):
            words = text.split()
            span = words[positions[0] - 1:positions[-1] + 1]
            first = words.index(span[0])
            assert words[first:first + len(span)] == span and first < positions[0] - 1  # a copy of an earlier span
            assert words.count(span[0]) == 2 and "list" not in words  # one source, no marker
            if kind == "long":
                assert len(span) == corpus.LONG_SPAN > STRUCTURAL.repeat_max
    pool = set(corpus.INDUCTION_POOL)
    function_words = 0
    for text, positions in corpus.repeat_sequences("ordinary", 50):
        words = text.split()
        span = words[positions[0] - 1:positions[-1] + 1]
        first = next(i for i in range(len(words)) if words[i:i + len(span)] == span)
        assert first < positions[0] - 1 and 4 <= len(span) <= 10 and "list" not in words
        assert all(words.count(w) == 2 for w in set(span) & pool)  # content words: only the two copies
        function_words += sum(w not in pool for w in span)
    assert function_words > 100  # the spans are running text, determiners and verbs included
    for depth in (6, 7):
        for ex in corpus.bracket_depth_examples(depth, 50):
            assert corpus.BRACKETS[open_brackets(ex.prompt)[-1]] == ex.target != ex.contrast


@pytest.mark.parametrize("config, message", [
    (corpus.CorpusConfig(kind="structural", ioi_heldout_families=tuple(corpus.IOI_INTROS)), "every IOI intro"),
    (corpus.CorpusConfig(kind="structural", ioi_heldout_families=tuple(corpus.IOI_GIVINGS)), "every IOI giving"),
    (corpus.CorpusConfig(kind="structural", ioi_heldout_families=("nope",)), "unknown IOI frame family"),
    (corpus.CorpusConfig(kind="structural", bracket_depth=30), "does not fit a context of 64"),
    (corpus.CorpusConfig(kind="structural", repeat_max=40), "do not fit twice"),
    (corpus.CorpusConfig(bracket_depth=6), "only to the structural corpus"),
])
def test_bad_corpus_configurations_are_refused(config, message):
    with pytest.raises(InterpError, match=message):
        corpus.check_corpus_config(config, 64)


def test_a_checkpoint_recording_a_malformed_corpus_is_refused():
    with pytest.raises(InterpError, match="invalid corpus"):
        corpus.corpus_config_from_options({"corpus": "structural", "bracket_depth": "deep"})
    config = corpus.corpus_config_from_options({"corpus": "structural", "ioi_heldout_families": "met_with,carries"})
    assert config.ioi_heldout_families == ("met_with", "carries") and config.bracket_depth == 4


def test_structural_task_examples_come_from_the_structural_held_out_sets():
    """A structural-corpus model's recipes take unmarked repeats, unseen IOI frames and brackets at its depth."""
    induction = corpus.task_examples("induction", 40, config=STRUCTURAL)
    for ex in induction:
        words = ex.prompt.split()
        assert "list" not in words and words[-1] == ex.contrast
        # the prompt ends inside the second copy: the shown copied words occur once before, followed by the target
        k = next(k for k in range(len(words) // 2, 0, -1)
                 if any(words[i:i + k] == words[-k:] for i in range(len(words) - k)))
        i = next(i for i in range(len(words) - k) if words[i:i + k] == words[-k:])
        assert words[i + k] == ex.target
    ioi = corpus.task_examples("ioi", 20, config=STRUCTURAL)
    assert [e.prompt for e in ioi] == [e.prompt for e in corpus.ioi_frame_examples(STRUCTURAL, 20)]
    brackets = corpus.task_examples("brackets", 20, config=STRUCTURAL)
    assert [e.prompt for e in brackets] == [e.prompt for e in corpus.bracket_depth_examples(6, 20)]
    # the planted corpus (or none) keeps the planted sets
    assert ([e.prompt for e in corpus.task_examples("ioi", 5, config=corpus.CorpusConfig())]
            == [e.prompt for e in corpus.ioi_examples(5)])


def test_training_tokens_follow_the_corpus_config():
    tok = corpus.make_tokenizer()
    planted = corpus.training_tokens(tok, 3, 32, seed=4)
    structural = corpus.training_tokens(tok, 3, 32, seed=4, config=STRUCTURAL)
    assert planted == corpus.training_tokens(tok, 3, 32, seed=4, config=corpus.CorpusConfig())
    assert structural != planted
    rng = random.Random(4)
    assert structural[0] == tok.encode(" ".join(corpus.training_document(rng, 31, STRUCTURAL)))[:32]


def test_dictionary_batches_use_the_corpus_the_model_was_trained_on():
    from types import SimpleNamespace

    from interp.train.dictionaries import corpus_batches

    tok = corpus.make_tokenizer()
    cfg = SimpleNamespace(n_ctx=24, device="cpu")
    options = {"corpus": "structural", "bracket_depth": 6}
    structural = next(corpus_batches(SimpleNamespace(model=SimpleNamespace(cfg=cfg), tokenizer=tok,
                                                     config={"train_options": options}), 4, seed=7))
    planted = next(corpus_batches(SimpleNamespace(model=SimpleNamespace(cfg=cfg), tokenizer=tok, config={}), 4, seed=7))
    assert structural.tolist() == corpus.training_tokens(tok, 4, 24, seed=7, config=STRUCTURAL)
    assert planted.tolist() == corpus.training_tokens(tok, 4, 24, seed=7)
