"""Turn structured attributes into text: generator prompts and third-person captions.

Both draw every wording at random (from the given `random.Random`) from `wording.py` and arrange the
pieces in one of several sentence orders, so the same attributes yield many paraphrases. Captions
become the Motion2Language answers, so `parse_attributes(caption(attrs, rng))` recovers `attrs`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tdmm_ray.prompts import wording as W
from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES

# Share of texts that state intensity as "at <level> intensity" instead of an adverb.
_LEVEL_PHRASE_SHARE = 0.15
# Share of (non-transition) texts that name the emotion with a noun ("a faint look of joy").
_NOUN_FORM_SHARE = 0.3


@dataclass(frozen=True)
class _Subject:
    noun_phrase: str  # "a man" / "The person"
    short: str        # "he" / "the person"
    poss: str         # "his" / "their"


@dataclass(frozen=True)
class _Pieces:
    pred: str            # verb phrase: "looks mildly happy"
    part: str            # participle/with phrase: "looking mildly happy"
    head_ger: str
    head_pres: str
    actions_with: str    # ", with a blink and a smirk" or ""
    actions_ger: str     # " and blinking" or ""
    actions_pres: str    # " and blinks" or ""
    dynamics: str        # "The joy fades away" or ""


def _actions_of(attrs: dict) -> list[str]:
    # Rows read back through pandas carry numpy arrays here; None means no actions.
    value = attrs.get("actions")
    return [] if value is None else [str(a) for a in value]


def validate_attributes(attrs: dict) -> None:
    """Raise ValueError naming the first attribute outside the taxonomy."""
    checks = (("emotion", EMOTIONS), ("intensity", INTENSITIES), ("head_motion", HEAD_MOTIONS), ("dynamics", DYNAMICS))
    for key, allowed in checks:
        if attrs.get(key) not in allowed:
            raise ValueError(f"attribute {key}={attrs.get(key)!r} is not one of {', '.join(allowed)}")
    actions = _actions_of(attrs)
    bad = [a for a in actions if a not in ACTIONS]
    if bad:
        raise ValueError(f"unknown actions {bad}; allowed: {', '.join(ACTIONS)}")
    if len(set(actions)) != len(actions):
        raise ValueError(f"actions repeat: {actions}")
    if attrs["dynamics"] == "transition":
        target = attrs.get("target_emotion")
        if target not in EMOTIONS or target == attrs["emotion"]:
            raise ValueError(f"a transition needs target_emotion in EMOTIONS and different from emotion "
                             f"{attrs['emotion']!r}, got {target!r}")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join_and(items: list[str]) -> str:
    return " and ".join(items)


def _continue_list(items: list[str]) -> str:
    """Continue a verb phrase: " and blinks" or ", squints and blinks"."""
    if not items:
        return ""
    return f" and {items[0]}" if len(items) == 1 else ", " + ", ".join(items[:-1]) + f" and {items[-1]}"


def _emotion_phrases(attrs: dict, rng: random.Random, poss: str) -> tuple[str, str]:
    """(predicate, participle) naming the emotion, its intensity, and for transitions the target."""
    level = attrs["intensity"]
    adj = rng.choice(W.EMOTION_ADJECTIVES[attrs["emotion"]])
    use_level_phrase = rng.random() < _LEVEL_PHRASE_SHARE
    suffix = f" at {rng.choice(W.INTENSITY_LEVEL_WORDS[level])} intensity" if use_level_phrase else ""
    strength = "" if use_level_phrase else rng.choice(W.INTENSITY_ADVERBS[level]) + " "
    if attrs["dynamics"] == "transition":
        pieces = {"a": f"{strength}{adj}", "b": rng.choice(W.EMOTION_ADJECTIVES[attrs["target_emotion"]])}
        return (rng.choice(W.TRANSITION_PREDICATES).format(**pieces) + suffix,
                rng.choice(W.TRANSITION_PARTICIPLES).format(**pieces) + suffix)
    if not use_level_phrase and rng.random() < _NOUN_FORM_SHARE:
        noun_phrase = (f"{rng.choice(W.INTENSITY_ARTICLES[level])} {rng.choice(W.EXPRESSION_FRAMES)} of "
                       f"{rng.choice(W.EMOTION_NOUNS[attrs['emotion']])}")
        verb = rng.choice(("shows", "wears", "has"))
        tail = f" on {poss} face" if verb == "has" else ""
        return f"{verb} {noun_phrase}{tail}", f"showing {noun_phrase}"
    verb = rng.choice(("looks", "appears", "seems", "is"))
    part_verb = rng.choice(("looking", "appearing"))
    return f"{verb} {strength}{adj}{suffix}", f"{part_verb} {strength}{adj}{suffix}"


def _pieces(attrs: dict, rng: random.Random, subject: _Subject) -> _Pieces:
    validate_attributes(attrs)
    poss = subject.poss
    pred, part = _emotion_phrases(attrs, rng, poss)
    head = attrs["head_motion"]
    actions = [a for a in ACTIONS if a in _actions_of(attrs)]
    rng.shuffle(actions)
    nouns = [rng.choice(W.ACTION_NOUNS[a]).format(poss=poss) for a in actions]
    gers = [rng.choice(W.ACTION_GERUNDS[a]).format(poss=poss) for a in actions]
    pres = [rng.choice(W.ACTION_PRESENT[a]).format(poss=poss) for a in actions]
    dynamics = ""
    if attrs["dynamics"] != "transition":
        noun = rng.choice(W.EMOTION_NOUNS[attrs["emotion"]])
        dynamics = rng.choice(W.DYNAMICS_SENTENCES[attrs["dynamics"]]).format(noun=noun)
    return _Pieces(
        pred=pred, part=part,
        head_ger=rng.choice(W.HEAD_GERUNDS[head]).format(poss=poss),
        head_pres=rng.choice(W.HEAD_PRESENT[head]).format(poss=poss),
        actions_with=f", with {_join_and(nouns)}" if nouns else "",
        actions_ger=_continue_list(gers),
        actions_pres=_continue_list(pres),
        dynamics=dynamics,
    )


def _sentences(*parts: str) -> str:
    """Join non-empty sentences, each capitalized and ending in a period."""
    out = []
    for p in parts:
        p = p.strip()
        if p:
            out.append(_cap(p) + ("" if p.endswith(".") else "."))
    return " ".join(out)


def _layout(p: _Pieces, s: _Subject, rng: random.Random, opener: str) -> str:
    """One of several sentence orders over the same pieces; `opener` is the subject as first words."""
    choice = rng.randrange(6)
    if choice == 0:
        return _sentences(f"{opener} {p.pred}, {p.head_ger}{p.actions_with}", p.dynamics)
    if choice == 1:
        return _sentences(f"{opener} {p.head_pres}{p.actions_pres} while {p.part}", p.dynamics)
    if choice == 2:
        return _sentences(f"{p.head_ger}{p.actions_ger}, {opener[:1].lower() + opener[1:]} {p.pred}", p.dynamics)
    if choice == 3:
        linker = rng.choice(("", "meanwhile, ", "at the same time, "))
        return _sentences(f"{opener} {p.pred}", f"{linker}{s.short} {p.head_pres}{p.actions_pres}", p.dynamics)
    if choice == 4:
        return _sentences(p.dynamics, f"{opener} {p.pred} and {p.head_pres}{p.actions_pres}")
    return _sentences(f"{opener} {p.head_pres}{p.actions_pres}, {p.part}", p.dynamics)


def _as_rng(rng: random.Random | int) -> random.Random:
    return random.Random(rng) if isinstance(rng, int) else rng


def prompt_text(attrs: dict, rng: random.Random | int) -> str:
    """A text-to-video prompt for a clip with these attributes ("Close-up video of a man who ...").
    `rng` is a random.Random (advanced in place) or an int seed."""
    rng = _as_rng(rng)
    np_, short, poss = rng.choice(W.PROMPT_SUBJECTS)
    subject = _Subject(np_, short, poss)
    p = _pieces(attrs, rng, subject)
    if rng.random() < 0.5:
        # A shot description first ("Close-up video of a man ..."), then a relative or participle clause.
        shot = f"{rng.choice(W.SHOT_PREFIXES)} {np_}"
        choice = rng.randrange(3)
        if choice == 0:
            text = _sentences(f"{shot} who {p.pred}, {p.head_ger}{p.actions_with}", p.dynamics)
        elif choice == 1:
            text = _sentences(f"{shot} {p.part}, {p.head_ger}{p.actions_with}", p.dynamics)
        else:
            text = _sentences(f"{shot} {p.head_ger}{p.actions_ger} while {p.part}", p.dynamics)
    else:
        text = _layout(p, subject, rng, _cap(np_))
    return f"{text} {rng.choice(W.SCENE_SUFFIXES)}".strip()


def caption(attrs: dict, rng: random.Random | int) -> str:
    """A natural third-person description of a clip's face motion, readable back by the parser:
    "The person looks mildly happy, nodding, with a quick blink. The joy fades away."
    `rng` is a random.Random (advanced in place) or an int seed."""
    rng = _as_rng(rng)
    np_, short, poss = rng.choice(W.CAPTION_SUBJECTS)
    subject = _Subject(np_, short, poss)
    return _layout(_pieces(attrs, rng, subject), subject, rng, np_)
