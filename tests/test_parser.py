"""The attribute parser on free text it was not built from, on negations, and on our own writers."""

from __future__ import annotations

import random

import pytest

from tdmm_ray.prompts.parser import parse_attributes
from tdmm_ray.prompts.render import caption, prompt_text
from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES

AXES = ("emotion", "intensity", "head_motion", "actions", "dynamics", "target_emotion")


def expect(**kw) -> dict:
    out = {"emotion": None, "intensity": None, "head_motion": None, "actions": [], "dynamics": None,
           "target_emotion": None}
    out.update(kw)
    return out


# Hand-written sentences in wordings and orders our templates never produce (synonyms, colloquial
# phrasing, other clause orders, model-style output). Expected values are what a reader would say.
UNSEEN = [
    ("She's absolutely furious and shakes her head no.",
     expect(emotion="angry", intensity="intense", head_motion="shake")),
    ("A joyful kid nodding yes with a big grin.",
     expect(emotion="happy", head_motion="nod", actions=["grin"])),
    ("Terrified, the old man glances over his right shoulder.",
     expect(emotion="fearful", intensity="intense", head_motion="turn_right")),
    ("He seems a little irritated and keeps squinting at the camera.",
     expect(emotion="angry", intensity="mild", actions=["squint"])),
    ("Slightly puzzled expression; she cocks her head to her left.",
     expect(emotion="confused", intensity="subtle", head_motion="tilt_left")),
    ("The girl is astonished, her jaw drops and her eyebrows shoot up.",
     expect(emotion="surprised", intensity="intense", actions=["brow_raise", "jaw_drop"])),
    ("Glad and relaxed, he looks upward toward the sky.",
     expect(emotion="happy", head_motion="look_up")),
    ("Someone cheerful who gradually tilts their head to the right.",
     expect(emotion="happy", head_motion="tilt_right", dynamics="gradual")),
    ("Her face shows deep sorrow while she stares at the floor.",
     expect(emotion="sad", intensity="intense", head_motion="look_down")),
    ("A man scrunches up his nose in disgust, looking away to the left.",
     expect(emotion="disgusted", head_motion="turn_left", actions=["nose_wrinkle"])),
    ("Visibly bored, the teenager yawns and lowers her head.",
     expect(emotion="bored", intensity="moderate", head_motion="look_down")),
    ("A sneering, contemptuous look, chin raised.",
     expect(emotion="contempt", head_motion="look_up")),
    ("He starts off calm but ends up really scared.",
     expect(emotion="neutral", dynamics="transition", target_emotion="fearful")),
    ("Her happiness slowly gives way to sadness.",
     expect(emotion="happy", dynamics="transition", target_emotion="sad")),
    ("Anxious and fidgety, he blinks rapidly without moving his head.",
     expect(emotion="nervous", head_motion="still", actions=["blink"])),
    ("The woman chuckles, clearly amused, and bobs her head.",
     expect(emotion="amused", intensity="moderate", head_motion="nod")),
    ("An irate customer whose anger keeps escalating, lips pressed tight.",
     expect(emotion="angry", dynamics="building", actions=["lip_press"])),
    ("Faint smile that fades out, head held steady.",
     expect(emotion="happy", intensity="subtle", head_motion="still", dynamics="fading")),
    ("Shocked out of nowhere, she gasps with her mouth falling open.",
     expect(emotion="surprised", intensity="intense", actions=["jaw_drop"], dynamics="sudden")),
    ("The man, somewhat uneasy, turns his head toward the right and pouts.",
     expect(emotion="nervous", intensity="mild", head_motion="turn_right", actions=["pout"])),
    ("A frightened look builds up as she leans her head to the right.",
     expect(emotion="fearful", head_motion="tilt_right", dynamics="building")),
    ("Bewildered, he raises both eyebrows and looks down at the table.",
     expect(emotion="confused", head_motion="look_down", actions=["brow_raise"])),
    ("Mildly revolted, wrinkling her nose while shaking her head from side to side.",
     expect(emotion="disgusted", intensity="mild", head_motion="shake", actions=["nose_wrinkle"])),
    ("An expressionless face, perfectly still, staring straight ahead.",
     expect(emotion="neutral", head_motion="still")),
    ("Ecstatic fan jumping with joy, grinning and nodding along.",
     expect(emotion="happy", intensity="intense", head_motion="nod", actions=["grin"])),
    ("He is extremely sad at first and then becomes angry.",
     expect(emotion="sad", intensity="intense", dynamics="transition", target_emotion="angry")),
    ("Her smirk hints at disdain as she turns to face left.",
     expect(emotion="contempt", head_motion="turn_left", actions=["smirk"])),
    ("A weary, uninterested gaze downward; the boredom deepens over time.",
     expect(emotion="bored", head_motion="look_down", dynamics="building")),
    ("Suddenly startled, he jerks his head back and his eyebrows fly up.",
     expect(emotion="surprised", head_motion="look_up", actions=["brow_raise"], dynamics="sudden")),
    ("The actor looks moderately confused, tilting her head leftward.",
     expect(emotion="confused", intensity="moderate", head_motion="tilt_left")),
    ("Intensity: high. Emotion: fear. Head: turning right.",
     expect(emotion="fearful", intensity="intense", head_motion="turn_right")),
    ("Overwhelming panic, eyes narrowed, glancing upward.",
     expect(emotion="fearful", intensity="intense", head_motion="look_up", actions=["squint"])),
    ("Content and at ease, he sits still and blinks now and then.",
     expect(emotion="happy", intensity="mild", head_motion="still", actions=["blink"])),
    ("The subject's annoyance wears off little by little.",
     expect(emotion="angry", intensity="mild", dynamics="fading")),
    ("A nervous smile creeps in while she bows her head.",
     expect(emotion="nervous", head_motion="look_down", dynamics="gradual")),
    ("Laughing heartily, she throws her head back.",
     expect(emotion="amused", head_motion="look_up")),
    ("Perplexed frown; he swivels his head to the left with pursed lips.",
     expect(emotion="confused", head_motion="turn_left", actions=["pout"])),
    ("A composed woman abruptly turns angry, jaw clenched, lips tightened.",
     expect(emotion="neutral", dynamics="transition", target_emotion="angry", actions=["lip_press"])),
    ("Grinning from ear to ear, she turns her face to the right.",
     expect(emotion="happy", head_motion="turn_right", actions=["grin"])),
    ("A grumpy man scowls and looks down, his eyebrows lowered.",
     expect(emotion="angry", head_motion="look_down")),
    ("The child seems kind of worried and keeps biting her lip, head tilted to the right.",
     expect(emotion="nervous", intensity="mild", head_motion="tilt_right")),
    ("Surprise quickly melts into amusement.",
     expect(emotion="surprised", dynamics="transition", target_emotion="amused")),
    ("With a blank stare, he turns away to his left.", expect(emotion="neutral", head_motion="turn_left")),
    ("Her sorrow eases off as she lifts her chin.", expect(emotion="sad", head_motion="look_up", dynamics="fading")),
    ("A disgusted grimace appears in a flash, nose wrinkled.",
     expect(emotion="disgusted", actions=["nose_wrinkle"], dynamics="sudden")),
    ("He is thrilled, nodding vigorously.", expect(emotion="happy", intensity="intense", head_motion="nod")),
    ("Calmly shaking his head, the man purses his lips.",
     expect(emotion="neutral", head_motion="shake", actions=["pout"])),
    ("A scornful smirk while glancing downward, intensity medium.",
     expect(emotion="contempt", intensity="moderate", head_motion="look_down", actions=["smirk"])),
    ("She looks slightly perplexed and squints at the screen.",
     expect(emotion="confused", intensity="subtle", actions=["squint"])),
    ("A bored guy rolling his eyes upward.", expect(emotion="bored")),
]

# Per-axis accuracy floors on the unseen set. Misses are real (the parser is a lexicon, not a model),
# so the floors sit below 1.0 but well above what guessing or "always None" would score.
FLOORS = {"emotion": 0.9, "intensity": 0.85, "head_motion": 0.85, "actions": 0.85, "dynamics": 0.85,
          "target_emotion": 0.9}


def test_unseen_set_is_large_and_varied():
    assert len(UNSEEN) >= 30
    assert {e["emotion"] for _, e in UNSEEN} >= set(EMOTIONS)
    assert {e["head_motion"] for _, e in UNSEEN} - {None} == set(HEAD_MOTIONS)


@pytest.mark.parametrize("axis", AXES)
def test_accuracy_per_axis_on_unseen_sentences(axis):
    hits, misses = 0, []
    for text, expected in UNSEEN:
        got = parse_attributes(text)[axis]
        if got == expected[axis]:
            hits += 1
        else:
            misses.append((text, expected[axis], got))
    accuracy = hits / len(UNSEEN)
    assert accuracy >= FLOORS[axis], f"{axis}: accuracy {accuracy:.2f}; misses: {misses}"


@pytest.mark.parametrize("text, axis, forbidden", [
    ("She is not smiling.", "emotion", "happy"),
    ("He is no longer angry.", "emotion", "angry"),
    ("A woman listens without nodding.", "head_motion", "nod"),
    ("Never blinking, he stares ahead.", "actions", "blink"),
    ("She doesn't look scared at all.", "emotion", "fearful"),
    ("Neither happy nor sad.", "emotion", "sad"),
    ("He stops frowning and does not shake his head.", "head_motion", "shake"),
    ("Instead of nodding, she tilts her head to the right.", "head_motion", "nod"),
    ("No grin, no smirk.", "actions", "smirk"),
])
def test_negated_mentions_are_not_read(text, axis, forbidden):
    got = parse_attributes(text)[axis]
    assert got != forbidden and (not isinstance(got, list) or forbidden not in got), (text, got)


@pytest.mark.parametrize("text, expected", [
    ("She is not smiling.", expect()),
    ("He is no longer angry and now looks calm.", expect(emotion="neutral")),
    ("Instead of nodding, she tilts her head to the right.", expect(head_motion="tilt_right")),
    ("Without blinking, a very sad man nods.", expect(emotion="sad", intensity="intense", head_motion="nod")),
    ("Not scared at all, but mildly amused, looking down.",
     expect(emotion="amused", intensity="mild", head_motion="look_down")),
    ("He does not nod or shake his head; he looks up.", expect(head_motion="look_up")),
    ("Without moving her head, she is slightly happy.", expect(emotion="happy", intensity="subtle", head_motion="still")),
])
def test_negation_exact(text, expected):
    assert parse_attributes(text) == expected


def test_unknown_text_gives_none():
    assert parse_attributes("A video of a kitchen at night.") == expect()
    assert parse_attributes("") == expect()
    with pytest.raises(ValueError, match="string"):
        parse_attributes(None)  # type: ignore[arg-type]


def _random_attrs(rng: random.Random) -> dict:
    emotion, dynamics = rng.choice(EMOTIONS), rng.choice(DYNAMICS)
    target = rng.choice([e for e in EMOTIONS if e != emotion]) if dynamics == "transition" else None
    actions = sorted(rng.sample(ACTIONS, rng.randint(0, 2)), key=ACTIONS.index)
    return {"emotion": emotion, "intensity": rng.choice(INTENSITIES), "head_motion": rng.choice(HEAD_MOTIONS),
            "actions": actions, "dynamics": dynamics, "target_emotion": target}


@pytest.mark.parametrize("writer", [caption, prompt_text])
def test_round_trip_through_our_writers(writer):
    """Everything our writers produce is read back exactly: captions become the M2L answers and the
    parser scores them, so a caption the parser misreads would be a wrong label."""
    rng = random.Random(7)
    for _ in range(1500):
        attrs = _random_attrs(rng)
        text = writer(attrs, rng)
        got = parse_attributes(text)
        assert {k: got[k] for k in AXES} == attrs, text


def test_captions_paraphrase():
    attrs = {"emotion": "happy", "intensity": "mild", "head_motion": "nod", "actions": ["blink"],
             "dynamics": "gradual", "target_emotion": None}
    rng = random.Random(1)
    texts = {caption(attrs, rng) for _ in range(40)}
    assert len(texts) >= 30
    assert all(t[0].isupper() and t.endswith(".") for t in texts)


def test_writers_reject_attributes_outside_the_taxonomy():
    rng = random.Random(0)
    good = {"emotion": "happy", "intensity": "mild", "head_motion": "nod", "actions": [], "dynamics": "gradual",
            "target_emotion": None}
    with pytest.raises(ValueError, match="emotion"):
        caption({**good, "emotion": "hungry"}, rng)
    with pytest.raises(ValueError, match="target_emotion"):
        caption({**good, "dynamics": "transition", "target_emotion": "happy"}, rng)
    with pytest.raises(ValueError, match="actions"):
        prompt_text({**good, "actions": ["wink"]}, rng)
