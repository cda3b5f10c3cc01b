"""Sentences for the book's corpus: a seeded generator over a phonetically rich vocabulary.

TIMIT's prompts were chosen to cover the sounds of English; this vocabulary does the same
job for the synthetic corpus. Every word is written out in letters (no digits, no
abbreviations: the synthesiser would expand them unpredictably), and the lists include words
for the rarer sounds (the vowels of *boy*, *book* and *bout*, the consonants of *measure*,
*thin*, *judge* and *sing*), so that every one of the 39 scoring classes occurs in every split.

The generator is a pure function of its seed: ``sentence(seed)`` gives the same text on every
machine, in any order, which is what makes the corpus reproducible.
"""

from __future__ import annotations

import random

NAMES = (
    "anna", "bob", "carol", "david", "ellen", "frank", "george", "helen", "isaac", "judy",
    "kevin", "laura", "martha", "nigel", "oscar", "paula", "ralph", "sheila", "thomas", "vivian",
    "walter", "zoe", "joseph", "rachel", "charles", "joyce", "hugh", "ruth",
)
NOUNS = (
    "boy", "girl", "dog", "cat", "horse", "mouse", "bird", "fish", "sheep", "goat", "wolf",
    "king", "queen", "judge", "child", "farmer", "teacher", "soldier", "sailor", "doctor",
    "house", "garden", "kitchen", "church", "village", "valley", "mountain", "river", "ocean",
    "forest", "island", "bridge", "garage", "castle", "tower", "window", "ladder", "carpet",
    "table", "chair", "basket", "bottle", "cup", "spoon", "knife", "oven", "pillow", "blanket",
    "book", "letter", "story", "song", "voice", "noise", "coin", "toy", "treasure", "measure",
    "vision", "pleasure", "bread", "cheese", "sugar", "butter", "honey", "apple", "orange",
    "potato", "cookie", "juice", "soup", "water", "coffee", "oil", "soil", "sand", "stone",
    "wood", "leaf", "flower", "thorn", "feather", "thread", "cloth", "shirt", "shoe", "hat",
    "jacket", "wagon", "engine", "machine", "hammer", "rope", "whistle", "drum", "guitar",
    "picture", "paper", "pencil", "thumb", "mouth", "tooth", "throat", "shoulder", "finger",
    "weather", "thunder", "storm", "cloud", "rain", "snow", "autumn", "winter", "morning",
    "evening", "moon", "star", "planet", "path", "road", "journey", "market", "money", "job",
    "joke", "puzzle", "question", "answer", "lawyer", "author", "daughter", "mother", "father",
    "brother", "oyster", "pearl", "jewel", "ring", "bell", "candle", "lamp", "clock", "hour",
)
ADJECTIVES = (
    "big", "small", "old", "young", "quick", "slow", "happy", "angry", "quiet", "loud",
    "bright", "dark", "warm", "cold", "wet", "dry", "thin", "thick", "smooth", "rough",
    "soft", "hard", "heavy", "light", "rich", "poor", "strange", "usual", "clever", "foolish",
    "hungry", "thirsty", "tired", "busy", "lazy", "brave", "gentle", "noisy", "shiny", "dusty",
    "muddy", "sunny", "windy", "frozen", "golden", "silver", "purple", "yellow", "orange",
    "green", "beige", "crooked", "wooden", "woollen", "careful", "joyful", "awful", "pleasant",
    "ancient", "modern", "foreign", "northern", "southern", "tiny", "huge", "round", "sharp",
)
VERBS_PAST = (
    "saw", "found", "took", "brought", "bought", "caught", "taught", "thought about", "pushed",
    "pulled", "carried", "washed", "watched", "touched", "judged", "chased", "joined", "enjoyed",
    "avoided", "destroyed", "measured", "treasured", "painted", "cooked", "shook", "stood near",
    "looked at", "wanted", "needed", "noticed", "dropped", "lifted", "opened", "closed",
    "followed", "borrowed", "hid", "fixed", "moved", "loved", "heard", "called", "showed",
    "threw", "kept", "sold", "held", "built", "broke", "chose", "forgot", "remembered",
    "visited", "guarded", "covered", "described", "admired", "ignored", "pointed at",
)
VERBS_BARE = (
    "see", "find", "take", "bring", "catch", "push", "pull", "carry", "wash", "watch", "touch",
    "judge", "chase", "join", "enjoy", "avoid", "measure", "paint", "cook", "open", "close",
    "follow", "borrow", "fix", "move", "hear", "call", "show", "keep", "sell", "hold", "build",
    "choose", "remember", "visit", "guard", "cover", "describe",
)
INTRANSITIVE = (
    "slept", "laughed", "sang", "jumped", "waited", "smiled", "shouted", "whispered", "danced",
    "worked", "played", "rested", "vanished", "appeared", "shivered", "listened", "wandered",
    "hurried", "coughed", "cried", "stayed", "rose", "fell", "grew", "froze", "paused",
)
ADVERBS = (
    "slowly", "quickly", "quietly", "loudly", "carefully", "happily", "gently", "suddenly",
    "usually", "rarely", "often", "together", "again", "outside", "upstairs", "yesterday",
    "today", "early", "late", "badly", "easily", "thoroughly", "joyfully", "anxiously",
)
PREPOSITIONS = (
    "in", "on", "under", "behind", "beside", "near", "over", "through", "across", "along",
    "around", "beyond", "inside", "towards", "against", "without", "with", "from", "into",
)
DETERMINERS = ("the", "a", "this", "that", "every", "my", "your", "our", "their", "his", "her", "some")
CONJUNCTIONS = ("while", "because", "although", "after", "before", "when", "until", "since")


def _article(rng: random.Random, adjective: str | None, noun: str) -> str:
    det = rng.choice(DETERMINERS)
    first = adjective or noun
    if det == "a" and first[0] in "aeiou":
        det = "an"
    return f"{det} {adjective} {noun}" if adjective else f"{det} {noun}"


def _noun_phrase(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(NAMES)
    adjective = rng.choice(ADJECTIVES) if rng.random() < 0.6 else None
    return _article(rng, adjective, rng.choice(NOUNS))


def _clause(rng: random.Random) -> str:
    subject = _noun_phrase(rng)
    if rng.random() < 0.3:
        words = [subject, rng.choice(INTRANSITIVE)]
    else:
        words = [subject, rng.choice(VERBS_PAST), _noun_phrase(rng)]
    if rng.random() < 0.5:
        words += [rng.choice(PREPOSITIONS), _noun_phrase(rng)]
    if rng.random() < 0.3:
        words.append(rng.choice(ADVERBS))
    return " ".join(words)


def sentence(seed: int) -> str:
    """One sentence, a pure function of ``seed`` (about 6 to 16 words).

    >>> sentence(7) == sentence(7)
    True
    """
    rng = random.Random(f"asrlib-sentence-{seed}")
    kind = rng.random()
    if kind < 0.15:
        text = f"did {_noun_phrase(rng)} {rng.choice(VERBS_BARE)} {_noun_phrase(rng)}?"
    elif kind < 0.40:
        text = f"{_clause(rng)} {rng.choice(CONJUNCTIONS)} {_clause(rng)}."
    else:
        text = f"{_clause(rng)}."
    return text[0].upper() + text[1:]
