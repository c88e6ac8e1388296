"""A seeded synthetic corpus of English-like text with three planted tasks whose circuits are known.

Among ordinary sentences ("the old dog sees a red ball ."), training text contains:

- induction: a random span of words after "list :" that is repeated later in the same context,
  so its continuation can only be predicted by copying;
- indirect object identification (IOI): "when Mary and John went to the park , John gave a book to"
  → "Mary", over many names, places, objects and templates;
- bracket matching: code-like lines with nested brackets of four kinds, each closed with its kind.

Held-out evaluation sets use IOI templates, names, places and objects that never occur in an IOI
training sentence (the held-out names, places and objects do occur in ordinary sentences and
induction spans, so the model has embeddings for them and has learned to output them), fresh random
induction spans and fresh bracket lines. Each task has a function returning `TaskExample`s (prompt, target word, contrast word) for circuit recipes.

That "planted" corpus teaches each task in one format. The "structural" corpus (`CorpusConfig(kind="structural")`,
`interp train lm --corpus structural`) varies the structure: unmarked repeats of 2–16 words anywhere in running
text, IOI composed from clause families (some held out of training whole), bracket lines of every depth up to a
configurable maximum. Structural evaluation sets (`STRUCTURAL_SETS`) measure each task outside its trained format.
Everything random draws from an explicitly seeded `random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from interp.data.tokenizer import WordTokenizer

TASKS = ("induction", "ioi", "brackets")

# IOI names: the first 80 occur in IOI training sentences, the last 18 only in held-out IOI prompts (all of
# them occur in ordinary sentences and induction spans). Many names, so that the IOI mechanism cannot
# memorise each one and has to work from what names share.
NAMES = ("Mary John Alice Bob Sarah Tom Emma James Lucy David Anna Paul Kate Mark Laura Peter Julia Sam Nina Adam "
         "Rose Luke Clara Ben Eva Jack Mia Leo Ruth Max Ivy Dan Grace Henry Olivia Oscar Sophie Ryan Chloe Ethan "
         "Hannah Noah Amy Owen Zoe Liam Ella Jacob Lily Lucas Ava Mason Isla Harry Freya Alfie Poppy George Daisy "
         "Arthur Molly Theo Evie Finn Maya Hugo Iris Felix Jude Esme Toby Alma Seth Vera Carl Nora Ivan Lena "
         "Hugh Tara Neil Gina Omar Rita Otto Edna Rex Fay Roy Joan Kurt Beth Glen Dora Troy Jill Wade Kim").split()
N_TRAIN_NAMES = 80
PLACES = ["store", "park", "school", "office", "beach", "market", "garden", "station", "library", "kitchen",
          "museum", "cafe", "farm", "lake", "river", "church"]
N_TRAIN_PLACES = 12
OBJECTS = ["book", "drink", "ball", "letter", "key", "bag", "apple", "pen", "ring", "cake", "coin", "lamp",
           "cup", "map", "hat", "gift"]
N_TRAIN_OBJECTS = 12
# {A} and {B} are the two names, {S} the repeated subject, {IO} the indirect object (the answer).
IOI_TRAIN_TEMPLATES = [
    "when {A} and {B} went to the {P} , {S} gave a {O} to {IO}",
    "after {A} and {B} met at the {P} , {S} handed the {O} to {IO}",
    "{A} and {B} were at the {P} . {S} gave the {O} to {IO}",
    "while {A} and {B} sat in the {P} , {S} passed a {O} to {IO}",
    "then {A} and {B} walked to the {P} and {S} showed the {O} to {IO}",
    "{A} and {B} found a {O} at the {P} . {S} gave it to {IO}",
]
IOI_EVAL_TEMPLATES = [
    "when {A} and {B} arrived at the {P} , {S} handed a {O} to {IO}",
    "after {A} and {B} went to the {P} , {S} showed a {O} to {IO}",
    "{A} and {B} were in the {P} and {S} passed the {O} to {IO}",
]
BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">"}
CODE_NAMES = ["x", "y", "z", "a", "b", "c", "i", "j", "k", "n", "f", "g", "h", "v", "w", "p"]
CODE_KEYWORDS = ["if", "for", "let", "call", "ret"]

DETERMINERS = ["the", "a", "this", "that", "every", "some"]
ADJECTIVES = ["old", "young", "red", "blue", "big", "small", "happy", "quiet", "green", "tall", "dark", "warm",
              "cold", "new", "fast", "slow"]
NOUNS = ["dog", "cat", "bird", "man", "woman", "child", "tree", "car", "house", "boat", "horse", "teacher",
         "doctor", "farmer", "city", "road", "table", "window", "door", "song", "story", "friend", "girl", "boy"]
VERBS = ["sees", "likes", "finds", "takes", "makes", "helps", "follows", "knows", "watches", "carries", "wants",
         "needs", "moves", "opens", "hears", "paints"]
PREPOSITIONS = ["near", "behind", "under", "beside", "with", "from", "into", "over"]
ADVERBS = ["today", "again", "slowly", "quickly", "often", "later", "now", "there"]
# Induction spans draw from words with no fixed order: nouns, adjectives, objects, places, names (all of them:
# copying a held-out name in a span is not IOI, and it is how the model learns to output those names at all).
INDUCTION_POOL = NOUNS + ADJECTIVES + OBJECTS + PLACES + NAMES
FUNCTION_WORDS = ["when", "after", "while", "then", "and", "went", "to", "met", "at", "were", "sat", "in",
                  "walked", "showed", "gave", "handed", "passed", "found", "it", "arrived", "had", "said",
                  "list", "is", "on"]
PUNCTUATION = [".", ",", ":", ";", "="]


def vocabulary() -> list[str]:
    """Every word the corpus can produce, in a fixed order (BOS is added by the tokenizer)."""
    words = (PUNCTUATION + FUNCTION_WORDS + DETERMINERS + ADJECTIVES + NOUNS + VERBS + PREPOSITIONS + ADVERBS
             + NAMES + PLACES + OBJECTS + list(BRACKETS) + list(BRACKETS.values()) + CODE_NAMES + CODE_KEYWORDS)
    return list(dict.fromkeys(words))


def make_tokenizer() -> WordTokenizer:
    return WordTokenizer(vocabulary())


@dataclass
class TaskExample:
    """One evaluation item: the model should continue `prompt` with `target` rather than `contrast`."""

    task: str
    prompt: str
    target: str
    contrast: str
    frame: tuple[str, ...] = ()  # IOI built from clause families: (intro family, giving family)


# ---------------------------------------------------------------- ordinary sentences


def _noun_phrase(rng: random.Random, names: list[str]) -> str:
    if rng.random() < 0.35:
        return rng.choice(names)
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS + OBJECTS if rng.random() < 0.8 else PLACES))
    return " ".join(words)


def ordinary_sentence(rng: random.Random, verbs: list[str] = VERBS, copula: bool = True) -> str:
    """A simple sentence; uses every name, place and object (held-out ones included). `copula`: one in ten is
    "NAME is at the P" instead."""
    s = f"{_noun_phrase(rng, NAMES)} {rng.choice(verbs)} {_noun_phrase(rng, NAMES)}"
    r = rng.random()
    if r < 0.35:
        s += f" {rng.choice(PREPOSITIONS)} the {rng.choice(PLACES + NOUNS)}"
    elif r < 0.5:
        s += f" {rng.choice(ADVERBS)}"
    elif r < 0.6 and copula:
        s = f"{rng.choice(NAMES)} is {rng.choice(['at', 'in', 'near'])} the {rng.choice(PLACES)}"
    return s + " ."


# Past-tense verbs of the vocabulary that take a name or noun phrase as object. The planted corpus writes "met" only
# in "A and B met at the P"; the structural corpus also uses these verbs in ordinary sentences ("the dog met Mary
# near the park ."), as running text would, so a name after "met" is not something the model has never read.
PAST_VERBS = ["met", "found", "passed", "showed"]


def past_sentence(rng: random.Random) -> str:
    """An ordinary sentence with a past-tense verb (structural corpus only; never an IOI frame: no "at the" place,
    no second clause)."""
    return ordinary_sentence(rng, PAST_VERBS, copula=False)


# ---------------------------------------------------------------- induction


def induction_span(rng: random.Random, length: int) -> list[str]:
    return rng.sample(INDUCTION_POOL, length)


def induction_text(rng: random.Random, span: list[str], filler: str) -> str:
    """'list : w1 … wk . <filler> list : w1 … wk .' — the second copy is predictable only by copying."""
    listed = "list : " + " ".join(span) + " ."
    return f"{listed} {filler} {listed}".replace("  ", " ")


def listed_induction_words(rng: random.Random) -> list[str]:
    """One training passage of the planted induction task: a span of 3–8 words listed twice, 0–2 ordinary
    sentences apart (both corpora draw it through here, so the planted corpus keeps its exact words)."""
    span = induction_span(rng, rng.randint(3, 8))
    filler = " ".join(ordinary_sentence(rng) for _ in range(rng.randint(0, 2)))
    return induction_text(rng, span, filler).split()


# ---------------------------------------------------------------- IOI


# Half of the IOI training sentences put other single words in the two name slots ("when dog and x went to
# the park , x gave a book to dog"): the structure then covers far more tokens than the training names,
# which pushes the model towards a mechanism that copies whichever token is not repeated, rather than
# one keyed to each name. Held-out names never fill an IOI slot in training.
IOI_OTHER_FILLERS = NOUNS + CODE_NAMES
IOI_OTHER_FILLER_FRACTION = 0.5


def ioi_sentence(rng: random.Random, split: str, names_split: str | None = None) -> tuple[str, str, str]:
    """(prompt ending before the answer, IO, S) from the training or held-out pools; training sentences
    draw their two "names" from the training names and, half the time, from `IOI_OTHER_FILLERS` too.
    `names_split` takes the names from the other split's pool (to tell template from name generalisation)."""
    if split == "train":
        names, places, objects, templates = (NAMES[:N_TRAIN_NAMES], PLACES[:N_TRAIN_PLACES],
                                             OBJECTS[:N_TRAIN_OBJECTS], IOI_TRAIN_TEMPLATES)
        if names_split is None and rng.random() < IOI_OTHER_FILLER_FRACTION:
            names = names + IOI_OTHER_FILLERS
    else:
        names, places, objects, templates = (NAMES[N_TRAIN_NAMES:], PLACES[N_TRAIN_PLACES:],
                                             OBJECTS[N_TRAIN_OBJECTS:], IOI_EVAL_TEMPLATES)
    if names_split is not None:
        names = NAMES[:N_TRAIN_NAMES] if names_split == "train" else NAMES[N_TRAIN_NAMES:]
    a, b = rng.sample(names, 2)
    subject, indirect = (b, a) if rng.random() < 0.5 else (a, b)  # ABBA and ABAB orders equally often
    template = rng.choice(templates)
    prompt = template.format(A=a, B=b, P=rng.choice(places), O=rng.choice(objects), S=subject, IO="").strip()
    return prompt, indirect, subject


# ---------------------------------------------------------------- brackets


def bracket_line(rng: random.Random, max_depth: int = 4, max_items: int = 3) -> list[str]:
    """A code-like line: 'x = f ( a [ b { c } ] ) ;' with nested brackets of several kinds."""

    def expr(depth: int) -> list[str]:
        out: list[str] = []
        for _ in range(rng.randint(1, max_items)):
            if depth < max_depth and rng.random() < 0.55:
                opener = rng.choice(list(BRACKETS))
                out += [opener] + expr(depth + 1) + [BRACKETS[opener]]
            else:
                out.append(rng.choice(CODE_NAMES))
        return out

    head = [rng.choice(CODE_KEYWORDS)] if rng.random() < 0.3 else [rng.choice(CODE_NAMES), "="]
    opener = rng.choice(list(BRACKETS))
    return head + [rng.choice(CODE_NAMES), opener] + expr(1) + [BRACKETS[opener], ";"]


# ---------------------------------------------------------------- the structural corpus
#
# The "planted" corpus above (that of the shipped checkpoints) teaches each task in one format: induction only on
# "list : … . list : …" spans of 3–8 words, IOI in six fixed templates, brackets nested at most 4 deep (rarely
# that). The "structural" corpus varies the structure instead:
#
# - repeats: a span of 2–16 words (random pool words, a fifth of them ordinary text) anywhere in running text, with
#   no marker, repeated after a gap of ordinary text (marked lists stay, so the old format is still learned);
# - IOI: sentences composed of an intro clause (both names) × an optional middle clause × a giving clause (the
#   subject gives to the indirect object); whole intro or giving families can be held out of training;
# - brackets: besides the planted lines, lines whose nesting reaches a depth drawn uniformly from 1 to
#   `bracket_depth` (three in ten bracket lines), so every depth up to the configured maximum is seen.

# An IOI sentence is a prefix (when … , / after … , / … . / then … and …) around an intro clause that names both
# people, an optional middle clause, then a giving clause that ends before the indirect object. A frame family is one
# intro or one giving clause, with every prefix and every clause of the other kind it combines with. The training
# families vary the structure the names sit in (joined by "and", subject-verb-object, "with", after a place) so that
# each held-out family has a trained relative of the same shape but never its own wording: the model has to learn
# "name the person who is not repeated", not a template. Only corpus words are used, so every tokenizer of this
# corpus reads every family. {A}/{B}: the two names, {P}: a place, {N}: a noun, {O}: an object, {S}: the subject.
IOI_PREFIXES = [("when {}", ","), ("after {}", ","), ("while {}", ","), ("{}", "."), ("today {}", "."),
                ("then {}", "and"), ("{}", ",")]
IOI_INTROS = {
    "when_went": "{A} and {B} went to the {P}",
    "after_met": "{A} and {B} met at the {P}",
    "while_sat": "{A} and {B} sat in the {P}",
    "were_at": "{A} and {B} were at the {P}",
    "then_walked": "{A} and {B} walked to the {P}",
    "arrived": "{A} and {B} arrived at the {P}",
    "found": "{A} and {B} found a {N} near the {P}",
    "today_into": "{A} and {B} went into the {P}",
    "sees": "{A} sees {B} at the {P}",
    "helps": "{A} helps {B} in the {P}",
    "follows": "{A} follows {B} into the {P}",
    "knows": "{A} knows {B} from the {P}",
    "watches": "{A} watches {B} near the {P}",
    "walked_with": "{A} walked with {B} to the {P}",
    "went_with": "{A} went with {B} into the {P}",
    "in_the": "in the {P} , {A} and {B} found a {N}",
    "near_the": "near the {P} , {A} sees {B}",
    "any_verb": "{A} {V} {B} near the {P}",  # {V}: any corpus verb ("likes", "paints", ...)
    "any_verb_with": "{A} {V} with {B} in the {P}",
    "found_at": "{A} found {B} at the {P}",  # a past-tense verb between the names, before a place
    "passed_near": "{A} passed {B} near the {P}",
    # held out by default: a new verb between the names, a new "with" clause, a new clause after a place
    "met_with": "{A} met {B} at the {P}",
    "sat_with": "{A} sat with {B} behind the {P}",
    "at_the": "at the {P} , {A} and {B} had a {N}",
}
IOI_MIDDLES = ["the {ADJ} {N} {V} a {N} .", "it is {ADV} .", "a {N} sees the {N} ."]
IOI_GIVINGS = {
    "gave": "{S} gave a {O} to",
    "handed": "{S} handed the {O} to",
    "passed": "{S} passed a {O} to",
    "showed": "{S} showed the {O} to",
    "later_gave_it": "later {S} gave it to",
    "takes_over": "{S} takes the {O} over to",
    "then_passed": "then {S} passed the {O} to",
    "found_and_handed": "{S} found a {O} and handed it to",
    "showed_it": "now {S} showed it to",
    # held out by default: a new verb before "over to", a new "had … and gave it" clause
    "carries": "then {S} carries the {O} over to",
    "had_and_gave": "{S} had a {O} and gave it to",
}
# Held out of training by default: three intros and two giving clauses (none is a planted-corpus template).
IOI_HELDOUT_FAMILIES = ("met_with", "at_the", "sat_with", "carries", "had_and_gave")
CORPUS_KINDS = ("planted", "structural")
LONG_SPAN = 20  # the span length of the long-repeat evaluation set: beyond every training span


@dataclass(frozen=True)
class CorpusConfig:
    """Which corpus `training_document` writes. The defaults are the planted corpus of the shipped checkpoints,
    so a checkpoint whose `train_options` name no corpus was trained on exactly that."""

    kind: str = "planted"
    bracket_depth: int = 4  # deepest bracket nesting in training lines
    repeat_min: int = 2  # unmarked repeated spans: lengths drawn from [repeat_min, repeat_max] (structural)
    repeat_max: int = 16
    ioi_heldout_families: tuple[str, ...] = IOI_HELDOUT_FAMILIES  # intro or giving families never trained on


def bracket_line_min_length(depth: int) -> int:
    """Words of the shortest bracket line nested `depth` deep: 'x = y' + depth openers + 'z' + closers + ';'."""
    return 2 * depth + 5


def check_corpus_config(config: CorpusConfig, n_ctx: int) -> None:
    """Refuse, with one clear line, a corpus that cannot be generated or evaluated in `n_ctx` tokens."""
    from interp.errors import InterpError

    if config.kind not in CORPUS_KINDS:
        raise InterpError(f"unknown corpus {config.kind!r}; choose one of {', '.join(CORPUS_KINDS)}")
    if config.kind == "planted":
        if config != CorpusConfig():
            raise InterpError("bracket depth, repeat lengths and held-out IOI families apply only to the structural "
                              "corpus (--corpus structural)")
        return
    if config.bracket_depth < 1:
        raise InterpError(f"bracket depth must be at least 1, got {config.bracket_depth}")
    deeper = bracket_line_min_length(config.bracket_depth + 1)
    if deeper > n_ctx - 1:
        raise InterpError(f"bracket depth {config.bracket_depth} does not fit a context of {n_ctx} tokens: a line "
                          f"one level deeper (the deeper evaluation set) needs at least {deeper} words")
    if not 1 <= config.repeat_min <= config.repeat_max:
        raise InterpError(f"repeat span lengths must satisfy 1 <= min <= max, got {config.repeat_min}..{config.repeat_max}")
    if 2 * config.repeat_max + 2 > n_ctx - 1:
        raise InterpError(f"repeated spans of {config.repeat_max} words do not fit twice in a context of {n_ctx} tokens")
    unknown = [f for f in config.ioi_heldout_families if f not in IOI_INTROS and f not in IOI_GIVINGS]
    if unknown:
        raise InterpError(f"unknown IOI frame family {unknown[0]!r}; families are "
                          f"{', '.join(list(IOI_INTROS) + list(IOI_GIVINGS))}")
    if all(f in config.ioi_heldout_families for f in IOI_INTROS):
        raise InterpError("the corpus holds out every IOI intro family: no IOI sentence would be left to train on")
    if all(f in config.ioi_heldout_families for f in IOI_GIVINGS):
        raise InterpError("the corpus holds out every IOI giving family: no IOI sentence would be left to train on")


def corpus_config_from_options(options: dict | None) -> CorpusConfig:
    """The corpus a checkpoint was trained on, from its recorded `train_options` (absent keys: the planted corpus)."""
    from interp.errors import InterpError

    options = options or {}
    defaults = CorpusConfig()
    heldout = options.get("ioi_heldout_families", defaults.ioi_heldout_families)
    if isinstance(heldout, str):
        heldout = tuple(f for f in heldout.split(",") if f)
    ints = [options.get(key, getattr(defaults, key)) for key in ("bracket_depth", "repeat_min", "repeat_max")]
    if (not isinstance(options.get("corpus", defaults.kind), str) or not isinstance(heldout, (list, tuple))
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in ints)):
        raise InterpError("the recorded training options name an invalid corpus (corpus, bracket_depth, repeat_min, "
                          "repeat_max, ioi_heldout_families)")
    return CorpusConfig(kind=options.get("corpus", defaults.kind),
                        bracket_depth=options.get("bracket_depth", defaults.bracket_depth),
                        repeat_min=options.get("repeat_min", defaults.repeat_min),
                        repeat_max=options.get("repeat_max", defaults.repeat_max),
                        ioi_heldout_families=tuple(heldout))


def ioi_frames(config: CorpusConfig, split: str) -> list[tuple[str, str]]:
    """(intro, giving) family pairs: "train" = neither held out; "heldout" = at least one held out."""
    pairs = [(i, g) for i in IOI_INTROS for g in IOI_GIVINGS]
    held = set(config.ioi_heldout_families)
    if split == "train":
        return [(i, g) for i, g in pairs if i not in held and g not in held]
    return [(i, g) for i, g in pairs if i in held or g in held]


def ioi_composed(rng: random.Random, frames: list[tuple[str, str]], names: list[str], places: list[str],
                 objects: list[str], middle_probability: float = 0.0) -> tuple[str, str, str, tuple[str, str]]:
    """(prompt ending before the answer, IO, S, (intro, giving) family) for an IOI sentence built from one of
    `frames`."""
    a, b = rng.sample(names, 2)
    subject, indirect = (b, a) if rng.random() < 0.5 else (a, b)
    intro, giving = rng.choice(frames)
    before, after = rng.choice(IOI_PREFIXES)
    clause = IOI_INTROS[intro].format(A=a, B=b, P=rng.choice(places), N=rng.choice(NOUNS), V=rng.choice(VERBS))
    text = before.format(clause) + " " + after
    if after == "." and rng.random() < middle_probability:
        text += " " + rng.choice(IOI_MIDDLES).format(ADJ=rng.choice(ADJECTIVES), N=rng.choice(NOUNS),
                                                      V=rng.choice(VERBS), ADV=rng.choice(ADVERBS))
    text += " " + IOI_GIVINGS[giving].format(S=subject, O=rng.choice(objects))
    return text, indirect, subject, (intro, giving)


def ioi_structural_training_sentence(rng: random.Random, config: CorpusConfig) -> tuple[str, str, str]:
    """A training IOI sentence of the structural corpus (training frames, names, places and objects; half the time
    other single words fill the name slots, as in the planted corpus)."""
    names = NAMES[:N_TRAIN_NAMES]
    if rng.random() < IOI_OTHER_FILLER_FRACTION:
        names = names + IOI_OTHER_FILLERS
    return ioi_composed(rng, ioi_frames(config, "train"), names, PLACES[:N_TRAIN_PLACES], OBJECTS[:N_TRAIN_OBJECTS],
                        middle_probability=0.3)[:3]


def bracket_chain_line(rng: random.Random, depth: int) -> list[str]:
    """A code-like line whose nesting reaches exactly `depth`: one chain of `depth` brackets, each level with
    optional sibling names or shallow bracket pairs that never go deeper than the chain."""

    def level(d: int) -> list[str]:  # the content of a bracket opened at nesting d
        if d == depth:
            return [rng.choice(CODE_NAMES)]
        opener = rng.choice(list(BRACKETS))
        inner = [opener] + level(d + 1) + [BRACKETS[opener]]
        before, after = [], []
        for side in (before, after):
            r = rng.random()
            if r < 0.3:
                side.append(rng.choice(CODE_NAMES))
            elif r < 0.4:
                sibling = rng.choice(list(BRACKETS))
                side += [sibling, rng.choice(CODE_NAMES), BRACKETS[sibling]]
        return before + inner + after

    head = [rng.choice(CODE_KEYWORDS)] if rng.random() < 0.3 else [rng.choice(CODE_NAMES), "="]
    opener = rng.choice(list(BRACKETS))
    return head + [rng.choice(CODE_NAMES), opener] + level(1) + [BRACKETS[opener], ";"]


# The share of unmarked repeats whose span is cut from ordinary text (the rest are random pool words). At one half,
# "copy what followed the last time this word came" paid off after "the", verbs and names of running text, and the
# models carried that habit into ordinary sentences, where it is mostly wrong (0.16 nats worse there than the planted
# models). Mostly-random spans keep the copy cue on runs of content words, where real repeats are. None at all is too
# few: a bilinear model trained with 0 no longer copied a repeated stretch of running text (`induction_ordinary`
# 0.24, the no-copy level; 0.95 at 0.2), though it lost less on ordinary sentences (3.17 against 3.21 nats).
REPEAT_ORDINARY_SPAN_SHARE = 0.2


def ordinary_span(rng: random.Random, length: int) -> list[str]:
    """`length` consecutive words cut from ordinary sentences (at any word, across sentence ends)."""
    text: list[str] = []
    while len(text) < length:
        text += ordinary_sentence(rng).split()
    start = rng.randint(0, len(text) - length)
    return text[start:start + length]


def repeat_text(rng: random.Random, config: CorpusConfig) -> list[str]:
    """An unmarked repeat: a span (random pool words or ordinary text), a gap of ordinary text, the span again."""
    length = rng.randint(config.repeat_min, config.repeat_max)
    span = induction_span(rng, length) if rng.random() >= REPEAT_ORDINARY_SPAN_SHARE else ordinary_span(rng, length)
    gap: list[str] = []
    for _ in range(rng.randint(0, 2)):
        gap += ordinary_sentence(rng).split()
    return span + gap + span


def _ioi_training_words(sentence) -> list[str]:
    prompt, indirect, _ = sentence
    return prompt.split() + [indirect, "."]


def _mixture(rng: random.Random, n_words: int, parts, passages: list | None = None) -> list[str]:
    """About `n_words` words: each passage is drawn by the first `(bound, kind, make)` of `parts` with r < bound,
    for one uniform r per passage (bounds ascending, the last 1.0). `passages`, if given, receives one
    `(kind, first word index)` per passage (the last may be cut at `n_words`)."""
    words: list[str] = []
    while len(words) < n_words:
        r = rng.random()
        kind, make = next((kind, make) for bound, kind, make in parts if r < bound)
        if passages is not None:
            passages.append((kind, len(words)))
        words += make()
    return words[:n_words]


def structural_document(rng: random.Random, n_words: int, config: CorpusConfig,
                        passages: list | None = None) -> list[str]:
    """About `n_words` words of the structural corpus."""
    def brackets() -> list[str]:
        # Mostly the planted lines: a model that reads chains half the time predicts planted lines worse (+0.06
        # nats); a third of chains still brings every depth up to --bracket-depth.
        if rng.random() < 0.7:
            return bracket_line(rng, max_depth=min(config.bracket_depth, 4))
        return bracket_chain_line(rng, rng.randint(1, config.bracket_depth))

    # The planted passages stay in the mix, so the planted text is still learned as well as by the shipped models
    # (the held-out loss is measured on it). Each planted kind's loss follows how much of it a model reads: the
    # planted models read 4000 steps × a quarter of each; a share of about 0.15 per kind over 13000–15000 steps
    # reads more (at 8000 steps, planted bracket lines at 0.085 cost 0.06 nats more, lists at 0.10 0.02 more).
    # Which kind comes next costs a model of this mix ~0.009 nats per planted word whatever it learns
    # (bench/compare_heldout_loss.py --by-kind): the planted kinds' first words are rarer here.
    return _mixture(rng, n_words, [
        (0.16, "ordinary", lambda: ordinary_sentence(rng).split()),
        (0.20, "past", lambda: past_sentence(rng).split()),
        (0.44, "ioi_composed", lambda: _ioi_training_words(ioi_structural_training_sentence(rng, config))),
        (0.54, "ioi", lambda: _ioi_training_words(ioi_sentence(rng, "train"))),
        (0.76, "brackets", brackets),
        (0.90, "listed", lambda: listed_induction_words(rng)),
        (1.0, "repeat", lambda: repeat_text(rng, config)),
    ], passages)


# ---------------------------------------------------------------- training text


def training_document(rng: random.Random, n_words: int, config: CorpusConfig | None = None,
                      passages: list | None = None) -> list[str]:
    """About `n_words` words (no BOS) mixing ordinary sentences with the three tasks; `config` None or planted:
    the corpus of the shipped checkpoints, drawing exactly the same words from `rng` as before it had options.
    `passages`, if given, receives `(kind, first word index)` of each passage (`_mixture`)."""
    if config is not None and config.kind == "structural":
        return structural_document(rng, n_words, config, passages)
    return _mixture(rng, n_words, [
        (0.25, "ordinary", lambda: ordinary_sentence(rng).split()),
        (0.5, "ioi", lambda: _ioi_training_words(ioi_sentence(rng, "train"))),
        (0.75, "brackets", lambda: bracket_line(rng)),
        (1.0, "listed", lambda: listed_induction_words(rng)),
    ], passages)


def training_tokens(tokenizer: WordTokenizer, n_sequences: int, n_ctx: int, seed: int,
                    config: CorpusConfig | None = None) -> list[list[int]]:
    """`n_sequences` token sequences of length `n_ctx`, each BOS + corpus text (`config`: which corpus; None the
    planted one). Our word tokenizer gives one token per word; a subword tokenizer (a Hugging Face model's) is
    cut to `n_ctx` tokens, and a sequence that comes out short is continued with more corpus text."""
    rng = random.Random(seed)
    return [training_sequence(tokenizer, rng, n_ctx, config) for _ in range(n_sequences)]


def training_sequence(tokenizer: WordTokenizer, rng: random.Random, n_ctx: int,
                      config: CorpusConfig | None = None) -> list[int]:
    """One sequence of `training_tokens`: BOS + corpus text, exactly `n_ctx` tokens, drawn from `rng`."""
    words = training_document(rng, n_ctx - 1, config)
    ids = tokenizer.encode(" ".join(words))
    while len(ids) < n_ctx:
        words += training_document(rng, n_ctx - len(ids), config)
        ids = tokenizer.encode(" ".join(words))
    return ids[:n_ctx]


# ---------------------------------------------------------------- held-out evaluation sets

EVAL_SEED = 1_000_003  # a seed no training run uses


def induction_examples(n: int = 200, seed: int = EVAL_SEED, span_length: int = 6) -> list[TaskExample]:
    """Prompts ending inside the repeated span: target = the next word of the first copy; contrast =
    the word the first copy had at that same position's previous step (a plausible copy error)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        span = induction_span(rng, span_length)
        filler = ordinary_sentence(rng)
        cut = rng.randint(1, span_length - 1)  # words of the second copy already shown
        prompt = f"list : {' '.join(span)} . {filler} list : {' '.join(span[:cut])}"
        out.append(TaskExample("induction", prompt, span[cut], span[cut - 1]))
    return out


def induction_sequences(n: int = 200, seed: int = EVAL_SEED, span_length: int = 6) -> list[tuple[str, list[int]]]:
    """Whole induction texts with the word positions (in `text.split()`) of the repeated tokens to score:
    every word of the second copy after its first."""
    rng = random.Random(seed + 1)
    out = []
    for _ in range(n):
        span = induction_span(rng, span_length)
        text = induction_text(rng, span, ordinary_sentence(rng))
        words = text.split()
        start = len(words) - span_length - 1  # first span word of the second copy
        out.append((text, list(range(start + 1, start + span_length))))
    return out


def ioi_examples(n: int = 200, seed: int = EVAL_SEED, names: str = "eval") -> list[TaskExample]:
    """Held-out IOI prompts (templates, names, places, objects never in IOI training): IO vs S.
    `names="train"` keeps the held-out templates, places and objects but uses training names."""
    rng = random.Random(seed + 2)
    out = []
    for _ in range(n):
        prompt, indirect, subject = ioi_sentence(rng, "eval", names_split=names)
        out.append(TaskExample("ioi", prompt, indirect, subject))
    return out


def bracket_examples(n: int = 200, seed: int = EVAL_SEED) -> list[TaskExample]:
    """Fresh lines cut just before a closing bracket: target = the right closer, contrast = the closer
    of the enclosing bracket (or another kind at the outermost level)."""
    rng = random.Random(seed + 3)
    out = []
    closers = list(BRACKETS.values())
    while len(out) < n:
        line = bracket_line(rng)
        stack: list[str] = []
        cuts = []
        for i, word in enumerate(line):
            if word in BRACKETS:
                stack.append(word)
            elif word in closers:
                opener = stack.pop()
                wrong = BRACKETS[stack[-1]] if stack and BRACKETS[stack[-1]] != word else \
                    rng.choice([c for c in closers if c != BRACKETS[opener]])
                cuts.append((i, wrong))
        i, wrong = rng.choice(cuts)
        out.append(TaskExample("brackets", " ".join(line[:i]), line[i], wrong))
    return out


# ---------------------------------------------------------------- structural held-out evaluation sets
#
# Fixed for every model (except where a set depends on the model's training corpus: the bracket depth it was
# trained to and its held-out IOI families), so shipped and new models are measured on the same text.

STRUCTURAL_SETS = ("induction_unmarked", "induction_distractor", "induction_long", "induction_ordinary",
                   "ioi_unseen_frames", "brackets_trained_depth", "brackets_deeper")


def _sentences_avoiding(rng: random.Random, avoid: set[str], count: int) -> list[str]:
    """`count` ordinary sentences, none sharing a word with `avoid` (so a copy has one unambiguous source)."""
    words: list[str] = []
    while count > 0:
        sentence = ordinary_sentence(rng).split()
        if not avoid & set(sentence):
            words += sentence
            count -= 1
    return words


def repeat_sequences(kind: str, n: int = 200, seed: int = EVAL_SEED) -> list[tuple[str, list[int]]]:
    """Unmarked repeats in running text, with the word positions (in `text.split()`) to score: every word of the
    second copy after its first. `kind`:
    "unmarked": [sentence] X [1–2 sentences] X, X of 4–10 random pool words;
    "distractor": [sentence] X [sentence] Y [sentence] X, Y another random span of 4–8 words sharing none of X's;
    "long": X [sentence] X with X of `LONG_SPAN` words (training spans are at most 16 words, planted ones 8);
    "ordinary": [sentence] X [1–2 sentences] X, X 4–10 consecutive words cut from ordinary sentences, so it holds
    determiners, verbs and full stops that the gap repeats: the copy has to follow the span, not one word."""
    from interp.errors import InterpError

    offsets = {"unmarked": 11, "distractor": 12, "long": 13, "ordinary": 14}
    if kind not in offsets:
        raise InterpError(f"unknown repeat set {kind!r}; choose one of {', '.join(offsets)}")
    rng = random.Random(seed + offsets[kind])
    out = []
    for _ in range(n):
        if kind == "ordinary":
            span = ordinary_span(rng, rng.randint(4, 10))
            avoid = set(span) & set(INDUCTION_POOL)  # its content words come only from the span
            words = _sentences_avoiding(rng, avoid, rng.randint(0, 1)) + span
            words += _sentences_avoiding(rng, avoid, rng.randint(1, 2))
            start = len(words)
            words += span
            out.append((" ".join(words), list(range(start + 1, start + len(span)))))
            continue
        span = induction_span(rng, LONG_SPAN if kind == "long" else rng.randint(4, 10 if kind == "unmarked" else 8))
        avoid = set(span)
        words = [] if kind == "long" else _sentences_avoiding(rng, avoid, rng.randint(0, 1))
        words += span
        if kind == "distractor":
            words += _sentences_avoiding(rng, avoid, 1)
            distractor = rng.sample([w for w in INDUCTION_POOL if w not in avoid], rng.randint(4, 8))
            avoid |= set(distractor)
            words += distractor
            words += _sentences_avoiding(rng, avoid, 1)
        else:
            words += _sentences_avoiding(rng, avoid, 1 if kind == "long" else rng.randint(1, 2))
        start = len(words)
        words += span
        out.append((" ".join(words), list(range(start + 1, start + len(span)))))
    return out


def ioi_frame_examples(config: CorpusConfig | None = None, n: int = 200, seed: int = EVAL_SEED) -> list[TaskExample]:
    """IOI in the frame families `config` holds out of training (the default ones for the planted corpus, which
    has none of these frames), with held-out names, places and objects: IO vs S."""
    config = config or CorpusConfig()
    rng = random.Random(seed + 14)
    frames = ioi_frames(config, "heldout")
    out = []
    for _ in range(n):
        prompt, indirect, subject, frame = ioi_composed(rng, frames, NAMES[N_TRAIN_NAMES:], PLACES[N_TRAIN_PLACES:],
                                                        OBJECTS[N_TRAIN_OBJECTS:], middle_probability=0.3)
        out.append(TaskExample("ioi", prompt, indirect, subject, frame))
    return out


def bracket_depth_examples(depth: int, n: int = 200, seed: int = EVAL_SEED) -> list[TaskExample]:
    """Lines nested exactly `depth` deep (`bracket_chain_line`), cut before a closer that comes after the deepest
    point (the unwinding of the chain: the innermost closer up to the outermost): target = the right closer,
    contrast = the enclosing bracket's closer (or another kind at the outermost level)."""
    rng = random.Random(seed + 100 + depth)
    closers = list(BRACKETS.values())
    out = []
    for _ in range(n):
        line = bracket_chain_line(rng, depth)
        stack: list[str] = []
        deepest = False
        cuts = []
        for i, word in enumerate(line):
            if word in BRACKETS:
                stack.append(word)
                deepest = deepest or len(stack) == depth
            elif word in closers:
                opener = stack.pop()
                if deepest:
                    wrong = BRACKETS[stack[-1]] if stack and BRACKETS[stack[-1]] != word else \
                        rng.choice([c for c in closers if c != BRACKETS[opener]])
                    cuts.append((i, wrong))
        i, wrong = rng.choice(cuts)
        out.append(TaskExample("brackets", " ".join(line[:i]), line[i], wrong))
    return out


def ioi_eval_prompts(n: int = 200) -> list[TaskExample]:
    return ioi_examples(n)


def induction_eval_prompts(n: int = 200) -> list[TaskExample]:
    return induction_examples(n)


def bracket_eval_prompts(n: int = 200) -> list[TaskExample]:
    return bracket_examples(n)


def unmarked_induction_examples(n: int = 200, seed: int = EVAL_SEED) -> list[TaskExample]:
    """The unmarked repeats of `repeat_sequences("unmarked")` cut inside the second copy (at least one copied word
    shown): target = the next word of the span; contrast = the word just shown (a plausible copy error)."""
    rng = random.Random(seed + 21)
    out = []
    for text, scored in repeat_sequences("unmarked", n, seed):
        words = text.split()
        cut = rng.choice(scored)
        out.append(TaskExample("induction", " ".join(words[:cut]), words[cut], words[cut - 1]))
    return out


def task_examples(task: str, n: int = 200, seed: int = EVAL_SEED,
                  config: CorpusConfig | None = None) -> list[TaskExample]:
    """The held-out examples of one task by name. For a model of the structural corpus (`config`), the structural
    sets: unmarked repeats, IOI in the frame families it never saw, brackets nested the trained depth deep."""
    from interp.errors import InterpError

    if task not in TASKS:
        raise InterpError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if config is not None and config.kind == "structural":
        structural = {"induction": lambda: unmarked_induction_examples(n, seed),
                      "ioi": lambda: ioi_frame_examples(config, n, seed),
                      "brackets": lambda: bracket_depth_examples(config.bracket_depth, n, seed)}
        return structural[task]()
    makers = {"induction": induction_examples, "ioi": ioi_examples, "brackets": bracket_examples}
    return makers[task](n, seed)
