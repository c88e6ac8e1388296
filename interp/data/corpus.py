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


# ---------------------------------------------------------------- ordinary sentences


def _noun_phrase(rng: random.Random, names: list[str]) -> str:
    if rng.random() < 0.35:
        return rng.choice(names)
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS + OBJECTS if rng.random() < 0.8 else PLACES))
    return " ".join(words)


def ordinary_sentence(rng: random.Random) -> str:
    """A simple sentence; uses every name, place and object (held-out ones included)."""
    s = f"{_noun_phrase(rng, NAMES)} {rng.choice(VERBS)} {_noun_phrase(rng, NAMES)}"
    r = rng.random()
    if r < 0.35:
        s += f" {rng.choice(PREPOSITIONS)} the {rng.choice(PLACES + NOUNS)}"
    elif r < 0.5:
        s += f" {rng.choice(ADVERBS)}"
    elif r < 0.6:
        s = f"{rng.choice(NAMES)} is {rng.choice(['at', 'in', 'near'])} the {rng.choice(PLACES)}"
    return s + " ."


# ---------------------------------------------------------------- induction


def induction_span(rng: random.Random, length: int) -> list[str]:
    return rng.sample(INDUCTION_POOL, length)


def induction_text(rng: random.Random, span: list[str], filler: str) -> str:
    """'list : w1 … wk . <filler> list : w1 … wk .' — the second copy is predictable only by copying."""
    listed = "list : " + " ".join(span) + " ."
    return f"{listed} {filler} {listed}".replace("  ", " ")


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


# ---------------------------------------------------------------- training text


def training_document(rng: random.Random, n_words: int) -> list[str]:
    """About `n_words` words (no BOS) mixing ordinary sentences with the three tasks."""
    words: list[str] = []
    while len(words) < n_words:
        r = rng.random()
        if r < 0.25:
            words += ordinary_sentence(rng).split()
        elif r < 0.5:
            prompt, indirect, _ = ioi_sentence(rng, "train")
            words += prompt.split() + [indirect, "."]
        elif r < 0.75:
            words += bracket_line(rng)
        else:
            span = induction_span(rng, rng.randint(3, 8))
            filler = " ".join(ordinary_sentence(rng) for _ in range(rng.randint(0, 2)))
            words += induction_text(rng, span, filler).split()
    return words[:n_words]


def training_tokens(tokenizer: WordTokenizer, n_sequences: int, n_ctx: int, seed: int) -> list[list[int]]:
    """`n_sequences` token sequences of length `n_ctx`, each BOS + corpus text. Our word tokenizer gives one
    token per word; a subword tokenizer (a Hugging Face model's) is cut to `n_ctx` tokens, and a sequence
    that comes out short is continued with more corpus text."""
    rng = random.Random(seed)
    return [training_sequence(tokenizer, rng, n_ctx) for _ in range(n_sequences)]


def training_sequence(tokenizer: WordTokenizer, rng: random.Random, n_ctx: int) -> list[int]:
    """One sequence of `training_tokens`: BOS + corpus text, exactly `n_ctx` tokens, drawn from `rng`."""
    words = training_document(rng, n_ctx - 1)
    ids = tokenizer.encode(" ".join(words))
    while len(ids) < n_ctx:
        words += training_document(rng, n_ctx - len(ids))
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


def ioi_eval_prompts(n: int = 200) -> list[TaskExample]:
    return ioi_examples(n)


def induction_eval_prompts(n: int = 200) -> list[TaskExample]:
    return induction_examples(n)


def bracket_eval_prompts(n: int = 200) -> list[TaskExample]:
    return bracket_examples(n)


def task_examples(task: str, n: int = 200, seed: int = EVAL_SEED) -> list[TaskExample]:
    """The held-out examples of one task by name."""
    from interp.errors import InterpError

    makers = {"induction": induction_examples, "ioi": ioi_examples, "brackets": bracket_examples}
    if task not in makers:
        raise InterpError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return makers[task](n, seed)
