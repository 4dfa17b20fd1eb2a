"""What the attribute parser recognizes: synonyms and phrasings per taxonomy value, as regexes.

This is deliberately much wider than `wording.py` (what our own writers say), so the parser also
reads free text: other people's prompts, paraphrases, model output. Text is normalized before
matching (lower case, hyphens and curly quotes straightened, single spaces).
"""

from __future__ import annotations

# Optional determiner before a body part ("his head", "the brows").
DET = r"(?:(?:the|his|her|their|its|one's|a|both)\s+)?"
# Words allowed between a head-motion verb and its direction ("turns her head over to the left").
_FILL_COMMON = r"his|her|their|the|its|head|face|chin|to|toward|towards|over|slightly|a|bit|little|slowly|quickly|" \
               r"gently|sharply|briefly|softly|way|round|around|off|shoulder|once|twice|repeatedly|far|sideways|just|away|back"
FILL_TURN = rf"(?:(?:{_FILL_COMMON}|gaze|eyes|look|looking|glance|glancing)\s+)"
FILL_TILT = rf"(?:(?:{_FILL_COMMON})\s+)"
FILL_LOOK = r"(?:(?:slightly|briefly|quickly|slowly|straight|back|way|just|toward|towards|at|the|and)\s+)"

# Emotion words; each may imply an intensity of its own, used only when the text names none.
EMOTION_TERMS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neutrally", "neutrality", "calm", "calmly", "calmness", "expressionless", "composed",
                "composure", "impassive", "blank expression", "blank face", "blank stare", "emotionless", "stoic",
                "relaxed", "placid", "serene", "deadpan", "straight face", "poker face", "unemotional",
                "unexpressive", "at ease"),
    "happy": ("happy", "happily", "happiness", "joy", "joyful", "joyfully", "joyous", "cheerful", "cheerfully",
              "cheer", "glad", "gladly", "delighted", "delight", "pleased", "smiling", "smile", "smiles", "smiled",
              "beaming", "beams", "upbeat", "elated", "ecstatic", "overjoyed", "thrilled", "content", "contented",
              "jubilant", "merry", "gleeful", "blissful", "radiant"),
    "sad": ("sad", "sadly", "sadness", "unhappy", "unhappiness", "sorrow", "sorrowful", "gloomy", "gloom",
            "melancholy", "melancholic", "downcast", "dejected", "despondent", "miserable", "heartbroken",
            "devastated", "grief", "grieving", "grief stricken", "mournful", "tearful", "crying", "weeping", "upset",
            "forlorn", "glum", "sorrowfully", "somber", "sombre", "crestfallen", "on the verge of tears"),
    "angry": ("angry", "angrily", "anger", "furious", "furiously", "fury", "rage", "raging", "enraged", "irate",
              "irritated", "irritation", "annoyed", "annoyance", "mad", "livid", "indignant", "indignation",
              "fuming", "outraged", "hostile", "scowling", "scowl", "scowls", "seething", "frustrated",
              "frustration", "infuriated", "irked", "resentful", "wrathful", "glaring", "cross faced", "grumpy",
              "grouchy", "sullen"),
    "fearful": ("fearful", "fearfully", "fear", "scared", "afraid", "frightened", "fright", "terrified", "terror",
                "horrified", "horror", "panicked", "panic", "panicking", "alarmed", "dread", "petrified", "spooked",
                "fearfulness", "trembling with fear"),
    "disgusted": ("disgusted", "disgust", "repulsed", "revolted", "revulsion", "grossed out", "sickened",
                  "nauseated", "appalled", "distaste", "repelled", "repugnance", "queasy"),
    "surprised": ("surprised", "surprise", "surprising", "amazed", "amazement", "astonished", "astonishment",
                  "shocked", "shock", "stunned", "startled", "taken aback", "dumbfounded", "flabbergasted",
                  "awestruck", "in awe", "wide eyed"),
    "contempt": ("contempt", "contemptuous", "contemptuously", "scorn", "scornful", "scornfully", "disdain",
                 "disdainful", "disdainfully", "sneering", "sneer", "sneers", "derisive", "derision",
                 "condescending", "condescension", "supercilious"),
    "nervous": ("nervous", "nervously", "nervousness", "anxious", "anxiously", "anxiety", "uneasy", "unease",
                "worried", "worry", "worrying", "tense", "jittery", "apprehensive", "apprehension", "on edge",
                "fidgety", "stressed", "jumpy", "edgy", "restless"),
    "amused": ("amused", "amusement", "entertained", "mirth", "mirthful", "laughing", "laughs", "laugh",
               "chuckling", "chuckles", "chuckle", "giggling", "giggles", "giggle", "tickled", "playful",
               "bemused"),
    "bored": ("bored", "boredom", "uninterested", "disinterested", "disinterest", "weary", "weariness", "tired",
              "listless", "apathetic", "yawning", "yawns", "jaded", "unenthused", "unimpressed", "lethargic",
              "sleepy", "drowsy"),
    "confused": ("confused", "confusion", "puzzled", "puzzlement", "perplexed", "perplexity", "bewildered",
                 "bewilderment", "baffled", "uncertain", "unsure", "befuddled", "quizzical", "quizzically",
                 "mystified", "disoriented", "lost in thought"),
}

IMPLIED_INTENSITY: dict[str, str] = {
    # strong words
    "furious": "intense", "furiously": "intense", "fury": "intense", "rage": "intense", "raging": "intense",
    "enraged": "intense", "livid": "intense", "fuming": "intense", "outraged": "intense", "seething": "intense",
    "infuriated": "intense", "terrified": "intense", "terror": "intense", "horrified": "intense",
    "horror": "intense", "panicked": "intense", "panic": "intense", "panicking": "intense", "petrified": "intense",
    "elated": "intense", "ecstatic": "intense", "overjoyed": "intense", "thrilled": "intense",
    "jubilant": "intense", "heartbroken": "intense", "devastated": "intense", "miserable": "intense",
    "grief stricken": "intense", "shocked": "intense", "stunned": "intense", "dumbfounded": "intense",
    "flabbergasted": "intense", "astonished": "intense", "sickened": "intense", "appalled": "intense",
    "weeping": "intense",
    # weak words
    "irritated": "mild", "irritation": "mild", "annoyed": "mild", "annoyance": "mild", "irked": "mild",
    "frustrated": "mild", "content": "mild", "contented": "mild", "pleased": "mild", "uneasy": "mild",
    "unease": "mild", "bemused": "mild", "puzzled": "mild", "quizzical": "mild", "glum": "mild",
    "relaxed": "mild",
}

INTENSITY_TERMS: dict[str, tuple[str, ...]] = {
    "subtle": ("slightly", "slight", "faintly", "faint", "subtly", "subtle", "barely", "a hint of", "a trace of",
               "a touch of", "a tinge of", "a flicker of", "a glimmer of", "a shade of", "hint of", "trace of",
               "tiny", "minimal", "minimally", "ever so slightly", "just barely", "marginally", "hardly visible"),
    "mild": ("mildly", "mild", "somewhat", "a little", "a little bit", "a bit", "kind of", "sort of", "light",
             "lightly", "soft", "gentle", "small", "modest", "modestly", "a tad", "mellow"),
    "moderate": ("moderately", "moderate", "fairly", "clearly", "clear", "visibly", "visible", "noticeably",
                 "noticeable", "evident", "evidently", "obviously", "obvious", "quite", "rather", "medium",
                 "reasonably", "plainly", "distinctly", "definitely", "unmistakably"),
    "intense": ("intensely", "intense", "extremely", "extreme", "very", "deeply", "deep", "overwhelmingly",
                "overwhelming", "overwhelmed", "strongly", "strong", "powerful", "powerfully", "really",
                "incredibly", "utterly", "utter", "absolutely", "completely", "totally", "highly", "hugely",
                "enormously", "profoundly", "profound", "wildly", "thoroughly", "sheer", "pure", "great", "fierce",
                "fiercely", "terribly", "immensely", "immense", "tremendously", "exceedingly", "super",
                "incredibly", "intensity of", "full blown", "extraordinarily"),
}

# "<word> intensity" / "intensity: <word>": an explicit level anywhere in the text.
INTENSITY_LEVELS: dict[str, tuple[str, ...]] = {
    "subtle": ("low", "minimal", "minimum", "subtle", "slight", "weak", "faint", "very low", "lowest"),
    "mild": ("mild", "light", "gentle", "soft", "modest", "moderately low"),
    "moderate": ("medium", "moderate", "average", "intermediate", "mid", "middling", "normal"),
    "intense": ("high", "full", "strong", "intense", "extreme", "maximum", "max", "maximal", "peak", "very high",
                "highest"),
}

HEAD_PATTERNS: dict[str, tuple[str, ...]] = {
    "still": (
        rf"\b(?:keep|hold|held|kept)\w*\s+{DET}head\s+(?:\w+\s+)?(?:still|steady|motionless|stationary|fixed|level)\b",
        r"\bhead\s+(?:stays|remains|is|held|kept|staying|remaining|stay|remain)\s+(?:\w+\s+)?"
        r"(?:still|steady|motionless|stationary|fixed)\b",
        rf"\bwith\s+{DET}head\s+(?:\w+\s+)?(?:still|steady|motionless|stationary)\b",
        r"\b(?:still|steady|motionless|unmoving|static|stationary|immobile)\s+head\b",
        rf"(?:\bwithout|\bnot|\bnever|n't)\s+(?:\w+\s+)?mov\w*\s+{DET}head\b",
        r"(?:\bwithout|\bnot|\bnever|n't)\s+(?:really\s+|even\s+)?mov(?:e|es|ing|ed)\b(?:\s+at\s+all)?",
        r"\bno\s+head\s+(?:motion|movement|moves)\b",
        r"\b(?:stays|staying|remains|remaining|sits|sitting|stands|standing|keeps|keeping|holds|holding|stay|"
        r"remain|stand|sit)\s+(?:\w+\s+)?(?:still|motionless|steady|stationary|immobile)\b",
        r"\b(?:perfectly|completely|totally|dead|very|almost|entirely)\s+(?:still|motionless|immobile)\b",
        r"\bhead\s+(?:perfectly\s+)?still\b",
        r"\bmotionless\b",
    ),
    "nod": (
        r"\bnod(?:s|ded|ding)?\b(?:\s+{DET}head)?(?:\s+(?:yes|in\s+agreement|along))?".replace("{DET}", DET),
        rf"\bbob\w*\s+{DET}head(?:\s+up\s+and\s+down)?",
        r"\bhead\s+bob\w*",
        rf"\bmov\w*\s+{DET}head\s+up\s+and\s+down\b",
    ),
    "shake": (
        rf"\bshak\w*\s+{DET}head(?:\s+no)?\b",
        r"\bhead\s+shak\w*",
        r"\bshak(?:e|es|ing)\s+no\b",
        rf"\b(?:mov|turn|swing|sway|swivel|wag)\w*\s+{DET}head\s+(?:from\s+)?side\s+to\s+side\b",
        r"\b(?:from\s+)?side\s+to\s+side\b",
        r"\bhead\s+no\b",
    ),
    "tilt_left": (
        rf"\b(?:tilt|cock|lean|incline|bend|bent)\w*\s+{FILL_TILT}{{0,5}}left(?:ward|wards)?\b",
        rf"\bhead\s+tilt\w*\s+{FILL_TILT}{{0,3}}left\b",
        r"\bleft(?:ward)?\s+(?:head\s+)?tilt\w*",
    ),
    "tilt_right": (
        rf"\b(?:tilt|cock|lean|incline|bend|bent)\w*\s+{FILL_TILT}{{0,5}}right(?:ward|wards)?\b",
        rf"\bhead\s+tilt\w*\s+{FILL_TILT}{{0,3}}right\b",
        r"\bright(?:ward)?\s+(?:head\s+)?tilt\w*",
    ),
    "turn_left": (
        rf"\b(?:turn|rotat|swivel|look|glanc|gaz|peer|swing|swung|twist|fac(?:e|es|ing)\b)\w*\s+{FILL_TURN}{{0,5}}left(?:ward|wards)?\b",
        r"\bleft(?:ward)?\s+(?:head\s+)?turn\w*",
        r"\bhead\s+turn\w*\s+(?:to\s+the\s+)?left\b",
    ),
    "turn_right": (
        rf"\b(?:turn|rotat|swivel|look|glanc|gaz|peer|swing|swung|twist|fac(?:e|es|ing)\b)\w*\s+{FILL_TURN}{{0,5}}right(?:ward|wards)?\b",
        r"\bright(?:ward)?\s+(?:head\s+)?turn\w*",
        r"\bhead\s+turn\w*\s+(?:to\s+the\s+)?right\b",
    ),
    "look_up": (
        rf"\b(?:look|gaz|glanc|peer|star|stare)\w*\s+{FILL_LOOK}{{0,3}}(?:up|upward|upwards|skyward|skywards|"
        r"at\s+the\s+(?:sky|ceiling))\b",
        rf"\b(?:rais|lift)\w*\s+{DET}(?:chin|head|face|gaze)\b",
        rf"\b(?:tilt|tip|throw|threw|lean|jerk|snap|pull|toss|fling|flung)\w*\s+{DET}head\s+"
        r"(?:back|backward|backwards|up|upward|upwards)\b",
        r"\bhead\s+(?:tilted|tipped|thrown|leaning)\s+back\b",
        r"\beyes\s+(?:turned\s+|raised\s+)?(?:up|upward|upwards|skyward)\b",
        r"\b(?:chin|head)\s+(?:up|raised|lifted)\b",
        r"\bupward\s+(?:gaze|glance|look)\b",
    ),
    "look_down": (
        rf"\b(?:look|gaz|glanc|peer|star|stare)\w*\s+{FILL_LOOK}{{0,3}}(?:down|downward|downwards|"
        r"at\s+the\s+(?:floor|ground|table))\b",
        rf"\b(?:lower|drop|bow|hang|dip)\w*\s+{DET}(?:head|gaze|chin|eyes|face)\b",
        r"\b(?:head|chin)\s+(?:bowed|lowered|down|hung|hanging|dropped|dips|drops)\b",
        r"\b(?:eyes|gaze)\s+(?:cast\s+|lowered\s+)?(?:down|downward|downwards)\b",
        r"\bdownward\s+(?:gaze|glance|look)\b",
    ),
}

ACTION_PATTERNS: dict[str, tuple[str, ...]] = {
    "blink": (r"\bblink\w*", rf"\bflutter\w*\s+{DET}(?:eyelids|eyes|lashes)\b"),
    "squint": (r"\bsquint\w*", rf"\bnarrow\w*\s+{DET}eyes\b", r"\beyes\s+narrow\w*"),
    "pout": (r"\bpout\w*", rf"\bpush\w*\s+{DET}lips\s+(?:out|forward)\b", rf"\bpurs\w*\s+{DET}lips\b",
             r"\bpucker\w*"),
    "grin": (r"\bgrin(?:s|ned|ning)?\b",),
    "smirk": (r"\bsmirk\w*",),
    "brow_raise": (
        rf"\b(?:rais|lift|arch|hik)\w*\s+{DET}(?:\w+\s+)?(?:eye)?brows?\b",
        r"\b(?:eye)?brows?\s+(?:\w+\s+)?(?:raised|raise|raises|raising|lifted|lift|lifts|lifting|arched|arch|"
        r"arches|rise|rises|rising|rose|(?:go|goes|going|went|shoot|shoots|shot|fly|flies|flew|jump|jumps|"
        r"jumped|pop|pops|popped|lift|lifts|lifted|climb|climbs|climbed|creep|creeps|crept)\s+up)\b",
        r"\bbrow\s+rais\w*",
    ),
    "jaw_drop": (
        rf"\bdrop\w*\s+{DET}jaw\b",
        r"\bjaw\s+(?:\w+\s+)?(?:drop|drops|dropped|dropping|falls|falling|fell|hangs|hanging|slack|slackens|"
        r"opens|open|opening|goes\s+slack)\b",
        r"\bdropped\s+jaw\b",
        r"\bmouth\s+(?:\w+\s+)?(?:falls|falling|fell|drops|dropping|dropped|hangs|hanging|hung|wide)\s+open\b",
        r"\bgap(?:e|es|ed|ing)\b",
        rf"\bopen\w*\s+{DET}mouth\s+wide\b",
        r"\bslack\s*jawed\b",
    ),
    "lip_press": (
        rf"\bpress\w*\s+{DET}lips\b",
        r"\blips\s+(?:\w+\s+)?(?:pressed|pressing|press|tight|tightened|tightly|compressed|thin|thinned|"
        r"clamped)\b",
        r"\b(?:tight|thin)\s+lipped\b",
        rf"\b(?:compress|tighten|clamp|clench|seal)\w*\s+{DET}lips\b",
        r"\bpressed\s+lips\b",
        r"\blip\s+press\w*",
    ),
    "nose_wrinkle": (
        rf"\b(?:wrinkl|scrunch|crinkl)\w*\s+(?:up\s+)?{DET}nose\b",
        r"\bnose\s+(?:\w+\s+)?(?:wrinkl|scrunch|crinkl)\w*",
    ),
}

DYNAMICS_PATTERNS: dict[str, tuple[str, ...]] = {
    "sudden": (r"\bsudden(?:ly)?\b", r"\babrupt(?:ly)?\b", r"\ball\s+at\s+once\b", r"\binstant(?:ly|aneously)?\b",
               r"\bin\s+an\s+instant\b", r"\bin\s+a\s+flash\b", r"\bout\s+of\s+nowhere\b", r"\bsnap\w*\s+into\b",
               r"\bburst\w*\s+(?:into|out)\b", r"\bwithout\s+warning\b", r"\bin\s+a\s+split\s+second\b",
               r"\bimmediately\b", r"\bjolt\w*\b"),
    "gradual": (r"\bgradual(?:ly)?\b", r"\blittle\s+by\s+little\b", r"\bbit\s+by\s+bit\b", r"\bstep\s+by\s+step\b",
                r"\bover\s+time\b", r"\bprogressive(?:ly)?\b", r"\bsteadily\b", r"\bcreep\w*\s+(?:in|into|over)\b",
                r"\bslowly\s+(?:becom|grow|turn|chang|shift|develop|emerg|spread|appear|form|dawn)\w*"),
    "building": (r"\bbuild(?:s|ing)?(?:\s+up)?\b", r"\bbuilt\s+up\b",
                 r"\b(?:grow|get)\w*\s+(?:ever\s+)?(?:stronger|more\s+intense|deeper|bigger|more\s+pronounced)\b",
                 r"\bintensif\w*", r"\bescalat\w*", r"\bswell\w*", r"\bramp\w*\s+up\b", r"\bmounting\b",
                 r"\bmore\s+and\s+more\b", r"\bstronger\s+and\s+stronger\b", r"\bdeepen\w*", r"\bcrescendo\b",
                 r"\bheighten\w*"),
    "fading": (r"\bfad(?:e|es|ed|ing)\b", r"\bsubsid\w*", r"\bwear\w*\s+off\b", r"\bwore\s+off\b",
               r"\bwan(?:e|es|ed|ing)\b", r"\bdissipat\w*", r"\bebb\w*", r"\b(?:die|dies|died|dying)\s+(?:down|away|out)\b",
               r"\bmelt\w*\s+away\b", r"\bless\s+and\s+less\b", r"\bdiminish\w*", r"\bsoften\w*",
               r"\bcalm\w*\s+down\b", r"\bevaporat\w*", r"\btrail\w*\s+off\b",
               r"\beas(?:e|es|ed|ing)\s+(?:off|away)\b", r"\brelent\w*"),
}
# Order in which dynamics cues win when a text has several ("slowly fades" is fading, not gradual).
DYNAMICS_PRECEDENCE = ("fading", "building", "sudden", "gradual")

# Words that make two named emotions a change within the clip rather than a blend.
TRANSITION_CUES = (
    r"\b(?:from|into|(?<!now and )then|becom\w*|became|turn(?:s|ed|ing)?|shift\w*|chang\w*|transition\w*|switch\w*|morph\w*|"
    r"gives?\s+way|giving\s+way|gave\s+way|ends?\s+up|ending\s+up|ended\s+up|at\s+first|later|afterwards?|"
    r"eventually|replaced|until|melt\w*\s+into|dissolv\w*\s+into|now(?!\s+and\s+then))\b"
)

# A negator shortly before a mention cancels it ("not smiling", "no longer angry", "without nodding").
NEGATORS = (
    r"(?:\bnot\b|\bno\b|\bnever\b|\bwithout\b|\bnor\b|\bneither\b|\bno\s+longer\b|\binstead\s+of\b|"
    r"\brather\s+than\b|\bstop(?:s|ped|ping)?\b|\bcease(?:s|d)?\b|n't\b|\black(?:s|ing)?\b|\bfree\s+of\b|"
    r"\bnone\b|\bnothing\b|\banything\s+but\b|\bfar\s+from\b|\bnon\b|\brefrain\w*\s+from\b|\bavoid\w*\b|"
    r"\bisnt\b|\bdoesnt\b|\bdont\b)"
)
NEGATION_REACH_WORDS = 5

# Clause boundaries: negation does not reach across them.
CLAUSE_BOUNDARIES = (
    r"[.,;:!?()]|\b(?:but|and|while|whereas|then|yet|though|although|however|now|so|as|when|before|after|until|"
    r"which|who|whose)\b"
)
