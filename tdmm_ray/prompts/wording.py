"""Wordings the prompt and caption writers draw from, one list per taxonomy value.

Everything here must be readable back by `tdmm_ray.prompts.parser` (tests check every wording);
the parser knows many more synonyms than are listed here, so it also reads text it was not built
from. `{poss}` is the possessive of the subject ("his", "her", "their").
"""

from __future__ import annotations

# Adjectives carry the emotion; intensity comes from a separate adverb, so none of these may imply
# a strength of its own (no "furious", "terrified").
EMOTION_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "calm", "expressionless", "composed"),
    "happy": ("happy", "joyful", "cheerful", "glad"),
    "sad": ("sad", "sorrowful", "unhappy", "gloomy"),
    "angry": ("angry", "irate", "indignant"),
    "fearful": ("fearful", "scared", "afraid", "frightened"),
    "disgusted": ("disgusted", "repulsed", "revolted"),
    "surprised": ("surprised", "amazed", "astonished"),
    "contempt": ("contemptuous", "scornful", "disdainful"),
    "nervous": ("nervous", "anxious", "uneasy"),
    "amused": ("amused", "entertained"),
    "bored": ("bored", "uninterested", "weary"),
    "confused": ("confused", "puzzled", "perplexed", "bewildered"),
}

EMOTION_NOUNS: dict[str, tuple[str, ...]] = {
    "neutral": ("calm", "composure", "neutrality"),
    "happy": ("happiness", "joy", "cheer"),
    "sad": ("sadness", "sorrow", "gloom"),
    "angry": ("anger", "indignation"),
    "fearful": ("fear", "fright", "dread"),
    "disgusted": ("disgust", "revulsion", "distaste"),
    "surprised": ("surprise", "amazement", "astonishment"),
    "contempt": ("contempt", "scorn", "disdain"),
    "nervous": ("nervousness", "anxiety", "unease"),
    "amused": ("amusement", "mirth"),
    "bored": ("boredom", "disinterest", "weariness"),
    "confused": ("confusion", "puzzlement", "bewilderment"),
}

# Adverbs before an adjective ("mildly happy").
INTENSITY_ADVERBS: dict[str, tuple[str, ...]] = {
    "subtle": ("subtly", "faintly", "slightly", "barely"),
    "mild": ("mildly", "somewhat", "a little", "a bit"),
    "moderate": ("moderately", "fairly", "clearly", "visibly", "quite"),
    "intense": ("intensely", "extremely", "very", "deeply", "overwhelmingly"),
}

# Article + adjective before "look/expression/sense of <noun>" ("a faint look of joy").
INTENSITY_ARTICLES: dict[str, tuple[str, ...]] = {
    "subtle": ("a subtle", "a faint", "a slight"),
    "mild": ("a mild", "a light", "a soft"),
    "moderate": ("a moderate", "a clear", "a noticeable", "an evident"),
    "intense": ("an intense", "a strong", "an overwhelming", "a powerful"),
}

# "<level> intensity" ("at low intensity").
INTENSITY_LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "subtle": ("low", "minimal"),
    "mild": ("mild", "light"),
    "moderate": ("medium", "moderate"),
    "intense": ("high", "full"),
}

EXPRESSION_FRAMES = ("look", "expression", "sense")

# Head motion as a participle ("nodding his head") and as a present-tense verb ("nods").
HEAD_GERUNDS: dict[str, tuple[str, ...]] = {
    "still": ("keeping {poss} head still", "holding {poss} head steady", "without moving {poss} head",
              "with {poss} head perfectly still"),
    "nod": ("nodding", "nodding {poss} head", "nodding yes", "bobbing {poss} head up and down"),
    "shake": ("shaking {poss} head", "shaking {poss} head no", "shaking {poss} head from side to side"),
    "tilt_left": ("tilting {poss} head to the left", "tilting {poss} head left", "cocking {poss} head to the left",
                  "leaning {poss} head toward the left"),
    "tilt_right": ("tilting {poss} head to the right", "tilting {poss} head right", "cocking {poss} head to the right",
                   "leaning {poss} head toward the right"),
    "turn_left": ("turning {poss} head to the left", "looking to the left", "turning to look left",
                  "glancing to the left"),
    "turn_right": ("turning {poss} head to the right", "looking to the right", "turning to look right",
                   "glancing to the right"),
    "look_up": ("looking up", "raising {poss} chin to look upward", "gazing upward", "tipping {poss} head back"),
    "look_down": ("looking down", "lowering {poss} gaze", "glancing downward", "dropping {poss} head to look down"),
}

HEAD_PRESENT: dict[str, tuple[str, ...]] = {
    "still": ("keeps {poss} head still", "holds {poss} head steady", "does not move {poss} head"),
    "nod": ("nods", "nods {poss} head", "nods yes"),
    "shake": ("shakes {poss} head", "shakes {poss} head no", "shakes {poss} head from side to side"),
    "tilt_left": ("tilts {poss} head to the left", "cocks {poss} head to the left"),
    "tilt_right": ("tilts {poss} head to the right", "cocks {poss} head to the right"),
    "turn_left": ("turns {poss} head to the left", "looks to the left", "glances to the left"),
    "turn_right": ("turns {poss} head to the right", "looks to the right", "glances to the right"),
    "look_up": ("looks up", "gazes upward", "raises {poss} chin to look up"),
    "look_down": ("looks down", "lowers {poss} gaze", "glances downward"),
}

ACTION_GERUNDS: dict[str, tuple[str, ...]] = {
    "blink": ("blinking", "blinking once", "blinking briefly"),
    "squint": ("squinting", "narrowing {poss} eyes"),
    "pout": ("pouting", "pushing {poss} lips out"),
    "grin": ("grinning", "grinning broadly"),
    "smirk": ("smirking", "smirking briefly"),
    "brow_raise": ("raising {poss} eyebrows", "lifting {poss} brows"),
    "jaw_drop": ("dropping {poss} jaw", "letting {poss} jaw drop"),
    "lip_press": ("pressing {poss} lips together", "pressing {poss} lips tight"),
    "nose_wrinkle": ("wrinkling {poss} nose", "scrunching up {poss} nose"),
}

ACTION_NOUNS: dict[str, tuple[str, ...]] = {
    "blink": ("a quick blink", "a blink", "a brief blink"),
    "squint": ("a squint", "narrowed eyes"),
    "pout": ("a pout", "a small pout"),
    "grin": ("a grin", "a broad grin"),
    "smirk": ("a smirk", "a lopsided smirk"),
    "brow_raise": ("raised eyebrows", "a brow raise"),
    "jaw_drop": ("a dropped jaw", "a jaw drop"),
    "lip_press": ("pressed lips", "tightly pressed lips"),
    "nose_wrinkle": ("a wrinkled nose", "a nose wrinkle"),
}

ACTION_PRESENT: dict[str, tuple[str, ...]] = {
    "blink": ("blinks", "blinks once"),
    "squint": ("squints", "narrows {poss} eyes"),
    "pout": ("pouts", "pushes {poss} lips out"),
    "grin": ("grins", "grins broadly"),
    "smirk": ("smirks",),
    "brow_raise": ("raises {poss} eyebrows", "lifts {poss} brows"),
    "jaw_drop": ("drops {poss} jaw", "lets {poss} jaw drop"),
    "lip_press": ("presses {poss} lips together",),
    "nose_wrinkle": ("wrinkles {poss} nose", "scrunches up {poss} nose"),
}

# Sentences about how the expression unfolds in time; {noun} is an emotion noun.
DYNAMICS_SENTENCES: dict[str, tuple[str, ...]] = {
    "sudden": ("The {noun} appears suddenly", "The {noun} hits all at once", "The expression comes on abruptly",
               "All of a sudden the {noun} shows"),
    "gradual": ("The {noun} develops gradually", "The {noun} appears little by little",
                "The expression forms gradually", "Step by step the {noun} emerges"),
    "building": ("The {noun} builds up over the clip", "The {noun} grows stronger and stronger",
                 "The expression keeps intensifying", "The {noun} keeps building"),
    "fading": ("The {noun} fades away", "The {noun} slowly subsides", "The expression gradually wears off",
               "Over the clip the {noun} fades"),
}

# Emotion change within a clip; {a} carries the intensity ("mildly sad"), {b} is an adjective.
TRANSITION_PREDICATES = (
    "goes from {a} to {b}", "shifts from {a} to {b}", "starts out {a} and ends up {b}",
    "changes from {a} into {b}", "is {a} at first, then becomes {b}",
)
TRANSITION_PARTICIPLES = (
    "going from {a} to {b}", "shifting from {a} to {b}", "starting out {a} and ending up {b}",
    "changing from {a} into {b}", "turning from {a} to {b}",
)

# Prompt subjects: (noun phrase, short reference, possessive).
PROMPT_SUBJECTS = (
    ("a man", "he", "his"), ("a woman", "she", "her"), ("a young woman", "she", "her"),
    ("a young man", "he", "his"), ("an older man", "he", "his"), ("an elderly woman", "she", "her"),
    ("a middle-aged man", "he", "his"), ("a teenage girl", "she", "her"), ("a person", "the person", "their"),
    ("a bearded man", "he", "his"), ("a woman with curly hair", "she", "her"), ("a man in glasses", "he", "his"),
)
SHOT_PREFIXES = ("Close-up video of", "A portrait shot of", "Front-facing footage of", "Studio video of",
                 "A head-and-shoulders shot of", "Realistic video of")
SCENE_SUFFIXES = ("", "", "Studio lighting, plain background.", "Cinematic lighting, shallow depth of field.",
                  "Daylight, fixed camera.", "Photorealistic, 25 fps.")

# Caption subjects: captions describe a clip, so they name nobody in particular.
CAPTION_SUBJECTS = (("The person", "the person", "their"), ("The subject", "the subject", "their"),
                    ("This person", "this person", "their"), ("The individual", "the individual", "their"))
