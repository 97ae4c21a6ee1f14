"""Tokenizer and prosody plan of the reference runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError, InputError
from vvbench.runtime.text import (
    BOS_ID,
    EOS_ID,
    N_SPECIAL,
    SegmentKind,
    Tokenizer,
    count_syllables,
    plan_prosody,
    split_turns,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SR = SAMPLE_RATE
TEXT = "Good evening, and welcome to the show. Tonight we talk about streaming speech synthesis!"


def _pauses_after_words(plan):
    """(word index, pause length) for every pause that follows a word."""
    segs = plan.segments
    out, word = [], -1
    for seg in segs:
        if seg.kind is SegmentKind.VOICED:
            word += 1
        elif word >= 0:
            out.append((word, seg.end_s - seg.start_s))
    return out


# -- tokenizer ---------------------------------------------------------------------------
def test_encode_is_deterministic_and_in_vocab():
    ids = Tokenizer(4096).encode(TEXT)
    assert ids == Tokenizer(4096).encode(TEXT)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert all(N_SPECIAL <= i < 4096 for i in ids[1:-1])
    assert Tokenizer(4096).encode(TEXT + " more") != ids


def test_encode_does_not_depend_on_python_hash_seed():
    code = ("from vvbench.runtime.text import Tokenizer; "
            f"print(Tokenizer(151936).encode({TEXT!r}))")
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        outputs.add(res.stdout)
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(Tokenizer(151936).encode(TEXT))


def test_long_words_become_several_pieces():
    tok = Tokenizer(4096)
    assert len(tok.word_ids("a")) == 1
    assert len(tok.word_ids("internationalisation")) == 5  # 20 characters, 4 per piece
    # a continuation piece is not the same id as the same characters starting a word
    assert tok.word_ids("nati")[0] != tok.word_ids("internationalisation")[2]


def test_word_cache_counts_hits_on_repeated_words():
    tok = Tokenizer(4096)
    tok.encode("the cat and the dog and the bird")
    info = tok.cache_info()
    assert info.misses == 5  # the, cat, and, dog, bird
    assert info.hits == 3
    tok.encode("the bird")
    assert tok.cache_info().hits == 5


def test_speaker_turns_get_speaker_ids():
    ids = Tokenizer(4096).encode("Speaker 1: hello there\nSpeaker 2: hi\nSpeaker 1: bye")
    assert [i for i in ids if 8 <= i < N_SPECIAL] == [8, 9, 8]


def test_vocab_too_small_is_a_config_error():
    with pytest.raises(ConfigError):
        Tokenizer(20)


# -- syllables ---------------------------------------------------------------------------
@pytest.mark.parametrize("word,expected", [
    ("a", 1), ("hello", 2), ("banana", 3), ("make", 1), ("little", 2), ("strengths", 1),
    ("synthesis", 3), ("hmm", 1), ("GPU", 3), ("WWW", 9), ("42", 3), ("3.14", 5), ("東京", 2),
])
def test_count_syllables(word, expected):
    assert count_syllables(word) == expected


# -- plan --------------------------------------------------------------------------------
def test_plan_starts_with_short_lead_in_then_a_word():
    segs = plan_prosody(TEXT).segments
    assert segs[0].kind is SegmentKind.PAUSE and segs[0].end_s == pytest.approx(0.06)
    assert segs[1].kind is SegmentKind.VOICED
    assert segs[-1].kind is SegmentKind.PAUSE  # tail silence


def test_word_duration_follows_syllables():
    segs = [s for s in plan_prosody("cat banana internationalisation").segments
            if s.kind is SegmentKind.VOICED]
    assert [s.syllables for s in segs] == [1, 3, 8]
    for seg in segs:
        per_syllable = (seg.end_s - seg.start_s) / seg.syllables
        assert 0.18 <= per_syllable <= 0.22


def test_duration_scales_with_length_and_inverse_speed():
    one = plan_prosody(TEXT)
    four = plan_prosody(" ".join([TEXT] * 4))
    assert 3.6 < four.duration_s / one.duration_s < 4.2
    fast = plan_prosody(TEXT, speed=2.0)
    slow = plan_prosody(TEXT, speed=0.5)
    assert fast.duration_s == pytest.approx(one.duration_s / 2)
    assert slow.duration_s == pytest.approx(one.duration_s * 2)
    assert fast.n_samples == pytest.approx(one.n_samples / 2, abs=2)


def test_pauses_at_word_boundaries_and_punctuation():
    plan = plan_prosody("one two, three four. five six\n\nseven")
    pauses = dict(_pauses_after_words(plan))
    assert 0.04 <= pauses[0] <= 0.08  # word gap
    assert pauses[1] == pytest.approx(0.20)  # comma
    assert 0.04 <= pauses[2] <= 0.08
    assert pauses[3] == pytest.approx(0.40)  # sentence end
    assert pauses[5] == pytest.approx(0.70)  # paragraph break
    assert pauses[6] == pytest.approx(0.20)  # tail


def test_speed_divides_pauses_too():
    pauses = dict(_pauses_after_words(plan_prosody("one two, three", speed=2.0)))
    assert pauses[1] == pytest.approx(0.10)


def test_multi_speaker_turns():
    script = ("Speaker 1: Hello and welcome.\nSpeaker 2: Thanks for having me!\n"
              "[S1] Let us begin.\nSpeaker 2: continuing\non a second line")
    turns = split_turns(script)
    assert [t.speaker for t in turns] == [0, 1, 0, 1]
    assert turns[-1].text.endswith("on a second line")
    plan = plan_prosody(script)
    assert plan.n_speakers == 2
    segs = plan.segments
    voiced = [s for s in segs if s.kind is SegmentKind.VOICED]
    assert [s.speaker for s in voiced] == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    # the pause at each turn change is the turn pause (longer than a sentence pause)
    for before, pause, after in zip(segs, segs[1:], segs[2:]):
        if before.kind is SegmentKind.VOICED and after.kind is SegmentKind.VOICED \
                and before.speaker != after.speaker:
            assert pause.end_s - pause.start_s == pytest.approx(0.50)


def test_speakers_numbered_by_first_appearance():
    plan = plan_prosody("Speaker 3: first\nSpeaker 1: second")
    assert [s.speaker for s in plan.segments if s.kind is SegmentKind.VOICED] == [0, 1]


def test_envelope_is_zero_in_pauses_and_bumps_per_syllable():
    plan = plan_prosody("banana. cat")
    env = plan.envelope(0, plan.n_samples)
    assert env.dtype == np.float32 and env.min() >= 0.0 and env.max() <= 1.0
    for seg in plan.segments:
        a, b = int(np.ceil(seg.start_s * SR)), int(seg.end_s * SR)
        if seg.kind is SegmentKind.PAUSE:
            assert not env[a:b].any()
        else:
            word = env[a:b]
            assert word[0] < 0.01 and word[-1] < 0.01  # smooth attack and release
            # one maximum per syllable: count rises through 0.6 of the word's peak
            above = word > 0.6 * word.max()
            assert int(np.sum(above[1:] & ~above[:-1])) + int(above[0]) == seg.syllables


def test_envelope_attack_takes_about_ten_ms():
    plan = plan_prosody("cat")
    start = int(np.ceil(plan.segments[1].start_s * SR))
    env = plan.envelope(start, 480)
    assert np.all(np.diff(env[:240]) >= 0)  # rises smoothly, no step
    assert env[120] < env[240]


def test_blocks_agree_with_one_big_query():
    plan = plan_prosody("Speaker 1: " + TEXT + "\nSpeaker 2: " + TEXT)
    whole = plan.block(0, plan.n_samples + 5000)
    for spf in (3200, 512, 777):
        parts = [plan.block(i * spf, spf) for i in range(-(-(plan.n_samples + 5000) // spf))]
        env = np.concatenate([p.envelope for p in parts])[:plan.n_samples + 5000]
        spk = np.concatenate([p.speaker for p in parts])[:plan.n_samples + 5000]
        prog = np.concatenate([p.progress for p in parts])[:plan.n_samples + 5000]
        np.testing.assert_array_equal(env, whole.envelope)
        np.testing.assert_array_equal(spk, whole.speaker)
        np.testing.assert_allclose(prog, whole.progress, atol=1e-9)


def test_past_the_end_is_silent_and_keeps_last_speaker():
    plan = plan_prosody("Speaker 1: one\nSpeaker 2: two")
    assert not plan.envelope(plan.n_samples, 3200).any()
    assert not plan.envelope(10 * plan.n_samples, 3200).any()
    assert set(plan.speaker_at(plan.n_samples + 10, 100)) == {1}
    assert plan.n_frames(3200) == -(-plan.n_samples // 3200)
    assert plan.n_frames(3200) * 3200 >= plan.n_samples > (plan.n_frames(3200) - 1) * 3200


def test_sentence_progress_runs_zero_to_one():
    plan = plan_prosody("one two three four five. six seven eight")
    segs = [s for s in plan.segments if s.kind is SegmentKind.VOICED]
    prog = plan.sentence_progress(0, plan.n_samples)
    first, last = int(np.ceil(segs[0].start_s * SR)), int(segs[4].end_s * SR) - 1
    assert prog[first] == pytest.approx(0.0, abs=1e-4)
    assert prog[last] == pytest.approx(1.0, abs=1e-4)
    assert prog[int(np.ceil(segs[5].start_s * SR))] == pytest.approx(0.0, abs=1e-4)


def test_voiced_fraction_is_speech_like():
    assert 0.6 < plan_prosody(TEXT).voiced_fraction < 0.9


def test_voice_salts_timing_but_not_the_mean_rate():
    a, b = plan_prosody(TEXT, voice="alloy"), plan_prosody(TEXT, voice="onyx")
    assert a.duration_s != b.duration_s
    assert a.duration_s == pytest.approx(b.duration_s, rel=0.1)
    assert plan_prosody(TEXT, voice="alloy").duration_s == a.duration_s


def test_ninety_minute_script_plans_fast():
    turn = ("Speaker 1: Welcome back to the show, everyone. Today we talk about long-form "
            "speech synthesis, and why a ninety-minute podcast is a different problem.\n"
            "Speaker 2: Thanks! It really is; memory grows with every minute.\n\n")
    script = (turn * (80_000 // len(turn) + 1))[:80_000]
    t0 = time.perf_counter()
    plan = plan_prosody(script)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert 75 * 60 < plan.duration_s < 110 * 60
    t0 = time.perf_counter()
    for i in range(200):
        plan.block(i * 3200 * 40, 3200)
    assert (time.perf_counter() - t0) / 200 < 2e-3  # per-frame query cost independent of length


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_empty_text_is_an_input_error(text):
    with pytest.raises(InputError) as err:
        plan_prosody(text)
    assert err.value.param == "input"


def test_text_without_words_is_an_input_error():
    with pytest.raises(InputError) as err:
        plan_prosody("... !!! ---")
    assert err.value.param == "input"


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_speed_is_an_input_error(speed):
    with pytest.raises(InputError) as err:
        plan_prosody(TEXT, speed=speed)
    assert err.value.param == "speed"
