"""Model selection, the validation split, the attribute header and the decoding rule (no Ray, fast)."""

from __future__ import annotations

import pytest
import torch

from tdmm_ray.config import LMConfig
from tdmm_ray.lm.data import VAL, attribute_header, m2l_prompt_ids, validation_split
from tdmm_ray.lm.decoding_rules import banned_repeat, has_immediate_repeat, word_start_table
from tdmm_ray.lm.generate import Banned, NoRepeatNGram, NoWordRepeat, Sampling, decode, non_text_ids
from tdmm_ray.lm.model import prepare_base
from tdmm_ray.lm.train import tokenizer_texts
from tdmm_ray.lm.selection import best_record, evals_since_best, is_new_best, should_stop, val_records
from tdmm_ray.lm.synthetic import COMPOSITION_HELDOUT, compositional_corpus
from tdmm_ray.prompts.parser import parse_attributes
from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS, INTENSITIES


def curve(*losses: float, every: int = 10) -> list[dict]:
    """A history like the training loop writes: train records plus validation records."""
    out = []
    for k, v in enumerate(losses, 1):
        out += [{"step": k * every, "loss": 9.0 - k}, {"step": k * every, "val_loss": v}]
    return out


def test_the_lowest_validation_loss_is_kept_not_the_last():
    history = curve(3.0, 2.0, 1.5, 1.7, 2.4, 3.1)  # the overfitting curve of the README's small run
    assert best_record(history)["step"] == 30
    assert best_record(history)["val_loss"] == 1.5
    assert evals_since_best(history) == 3
    # a new value is kept only when it beats every earlier one
    assert is_new_best(history, 1.49) and not is_new_best(history, 1.5) and not is_new_best(history, 2.0)
    assert not is_new_best(history, float("nan"))
    assert is_new_best([], 5.0) and best_record([{"step": 1, "loss": 2.0}]) is None


def test_ties_keep_the_earlier_step_and_a_replayed_step_counts_once():
    assert best_record(curve(2.0, 1.0, 1.0))["step"] == 20
    replayed = curve(2.0, 1.0) + [{"event": "resume", "step": 10}, {"step": 20, "val_loss": 1.2}]
    assert [r["val_loss"] for r in val_records(replayed)] == [2.0, 1.2]  # the replay's value wins


@pytest.mark.parametrize("patience,stops", [(0, False), (2, True), (3, True), (4, False)])
def test_early_stopping_counts_validations_without_a_new_best(patience, stops):
    assert should_stop(curve(3.0, 1.0, 1.2, 1.1, 1.3), patience) is stops


def test_validation_split_takes_train_compositions_only():
    rows = compositional_corpus(per_pair=3, test_per_pair=1)
    out = validation_split(rows, 0.15, seed=3)
    val = [r for r in out if r["split"] == VAL]
    train = [r for r in out if r["split"] == "train"]
    assert len(val) == round(sum(r["split"] == "train" for r in rows) * 0.15)
    assert not {(r["emotion"], r["head_motion"]) for r in val} & set(COMPOSITION_HELDOUT)
    # every validation composition still has training clips, and other splits are untouched
    assert {(r["emotion"], r["head_motion"]) for r in val} <= {(r["emotion"], r["head_motion"]) for r in train}
    assert [r["split"] for r in out if r["split"] not in ("train", VAL)] == \
        [r["split"] for r in rows if r["split"] != "train"]
    assert sum(r["split"] == VAL for r in rows) == 0  # the input rows are not modified
    assert validation_split(rows, 0.15, seed=3) == out  # stable across runs and resumes
    assert not any(r["split"] == VAL for r in validation_split(rows[:5], 0.5))  # too few clips: none held back
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(rows, 0.9)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_the_parser_reads_every_header_back(emotion):
    for intensity in INTENSITIES:
        for head in HEAD_MOTIONS:
            row = {"emotion": emotion, "intensity": intensity, "head_motion": head}
            # a contradicting paraphrase after the header does not override it
            text = attribute_header(row) + " The person looks furious and shakes the head."
            got = parse_attributes(text)
            assert (got["emotion"], got["intensity"], got["head_motion"]) == (emotion, intensity, head), text


def test_header_format_and_fallbacks():
    assert attribute_header({"emotion": "sad", "intensity": "mild", "head_motion": "tilt_left"}) == \
        "Emotion: sad. Intensity: mild. Head: tilt left."
    assert attribute_header({"emotion": "sad"}) == ""
    # an unknown header value falls back to the paraphrase; a header later in the text is not a header
    assert parse_attributes("Emotion: joyish. Head: nod. A furious face.")["emotion"] == "angry"
    assert parse_attributes("A calm face. Emotion: happy.")["emotion"] == "neutral"


def test_repetition_rule():
    word_start = [False, True, False, True, True]  # ids 1, 3, 4 start a word; 2 continues one
    assert banned_repeat([], word_start) is None
    assert banned_repeat([1], word_start) == 1          # "person" -> not "person" again
    assert banned_repeat([1, 2], word_start) == 1       # "per|son" -> not "per..." again
    assert banned_repeat([1, 2, 3], word_start) == 3
    assert has_immediate_repeat("The person person is happy.")
    assert has_immediate_repeat("It is. Is it")
    assert has_immediate_repeat("The person is happy, happy and calm.")
    assert not has_immediate_repeat("The person nods. The person smiles.")


def test_a_model_pushed_to_loop_on_a_word_cannot_repeat_it_with_the_rule():
    rows = compositional_corpus(per_pair=1, test_per_pair=0)
    model, tok = prepare_base(LMConfig(hidden_size=32, layers=1, heads=2, vocab_size=600), 64, tokenizer_texts(rows))
    person, is_ = tok(" person")["input_ids"], tok(" is")["input_ids"]
    assert len(person) == 1 and len(is_) == 1
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[person + is_] = torch.tensor([30.0, 29.0])  # "person" always wins, "is" is the runner-up

    def hook(_module, _inputs, output):
        return output + bias

    handle = model.get_output_embeddings().register_forward_hook(hook)
    prompt = m2l_prompt_ids(tok, rows[0]["tokens"])
    try:
        def generate(*rules):  # the Hugging Face forward (lean=False), so the hook's bias applies
            out = decode(model, [prompt], tok.pad_token_id, tok.eos_token_id, 8, [Sampling()],
                         [Banned(non_text_ids(tok)), *rules], lean=False)
            return tok.decode(out[0], skip_special_tokens=True)

        assert generate().split() == ["person"] * 8  # the loop of the issue
        assert has_immediate_repeat(generate(NoRepeatNGram(3)))  # a trigram ban does not stop it
        guarded = generate(NoRepeatNGram(3), NoWordRepeat(word_start_table(tok)))
        assert guarded.split()[:2] == ["person", "is"] and not has_immediate_repeat(guarded)
    finally:
        handle.remove()
