"""Decode-time rules for Motion2Language text, as pure functions over token ids plus a thin processor.

Immediate word repetition: a caption never says the same word twice in a row ("the person person",
"is is"), yet a small or undertrained model decoding greedily falls into exactly that loop, and
`no_repeat_ngram_size=3` does not stop it (every trigram of "person person person is is is" is
new). The rule: a token that starts a word may not equal the first token of the word just finished.
Byte-level BPE marks a word start with a leading space ("Ġ"), so the rule needs one boolean per
vocabulary id, computed once per tokenizer.

Used in generation as one more constraint on the Motion2Language path (`generate.NoWordRepeat`).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


_WORD_MARKS = ("\u0120", "\u2581")  # byte-level BPE's "Ġ" and SentencePiece's "▁": a leading space


def word_start_table(tokenizer: PreTrainedTokenizerBase) -> list[bool]:
    """Per token id: does the token begin a new alphabetic word (leading space mark, then a letter)?
    Read from the token strings, so a 150K vocabulary takes well under a second; compute it once
    per tokenizer."""
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    return [isinstance(p, str) and len(p) >= 2 and p[0] in _WORD_MARKS and p[1].isalpha() for p in pieces]


def previous_word_start(ids: Sequence[int], word_start: Sequence[bool]) -> int | None:
    """First token of the last word in `ids` (None before any word-start token)."""
    for tid in reversed(ids):
        if 0 <= tid < len(word_start) and word_start[tid]:
            return int(tid)
    return None


def banned_repeat(ids: Sequence[int], word_start: Sequence[bool]) -> int | None:
    """The token id that would repeat the previous word right after it, or None.

    The previous word is complete when the next token starts a word, so banning that word's first
    token as the next word start forbids "word word" and nothing else."""
    return previous_word_start(ids, word_start)


def has_immediate_repeat(text: str) -> bool:
    """True when some word directly follows itself ("is is"), ignoring case and punctuation."""
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    words = [w for w in words if w]
    return any(a == b for a, b in zip(words, words[1:]))
