"""The prosody plan: a timeline of voiced words and pauses, queried per block of samples.

`vvbench.runtime.text.plan_prosody` builds it; the synthesiser reads it one frame at a time.
A 90-minute script has ~15k words, so the plan keeps segment boundaries in numpy arrays and
answers every per-sample query (`block`, and its parts `envelope`, `speaker_at`,
`sentence_progress`) with one bisection and a walk over the few segments inside the requested
block; nothing is materialised per sample for the whole plan.

Envelope shape inside a word of s syllables: s equal slots, each a raised-cosine bump
``floor + (1 - floor) * sin(pi u)^2`` (so the amplitude dips between syllables, ~4-5 Hz
modulation at ~0.2 s per syllable), the stressed syllable at full height and the others lower,
and a 10 ms raised-cosine attack and release at the word's edges. Pauses are 0.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["PlanBlock", "ProsodyPlan", "Segment", "SegmentKind"]

SYLLABLE_FLOOR = 0.15  # envelope between two syllables of one word
UNSTRESSED_GAIN = 0.72  # unstressed syllables are ~3 dB below the stressed one
EDGE_S = 0.010  # word-edge attack/release: smooth, yet short enough for consonant-like onsets


class SegmentKind(str, enum.Enum):
    """What a segment of the timeline holds."""

    VOICED = "voiced"
    PAUSE = "pause"


@dataclass(frozen=True)
class Segment:
    """One stretch of the timeline, in seconds from the start of the audio."""

    start_s: float
    end_s: float
    kind: SegmentKind
    syllables: int  # 0 for pauses
    speaker: int  # index in order of first appearance in the script
    sentence: int  # running sentence number (the synthesiser's pitch declination resets on it)


@dataclass(frozen=True)
class PlanBlock:
    """Per-sample view of a block of the plan (what the synthesiser needs for one frame)."""

    envelope: np.ndarray  # float32, 0..1; 0 in pauses and past the end
    speaker: np.ndarray  # int64 speaker index; past the end, the last segment's speaker
    progress: np.ndarray  # float64, 0..1: how far through its sentence each sample is


class ProsodyPlan:
    """Timeline of one request; immutable, cheap to query for any block of samples."""

    def __init__(self, *, start_s: np.ndarray, end_s: np.ndarray, voiced: np.ndarray,
                 syllables: np.ndarray, speaker: np.ndarray, sentence: np.ndarray,
                 stress: np.ndarray, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self._start_s = np.asarray(start_s, dtype=np.float64)
        self._end_s = np.asarray(end_s, dtype=np.float64)
        self._voiced = np.asarray(voiced, dtype=bool)
        self._syllables = np.asarray(syllables, dtype=np.int64)
        self._speaker = np.asarray(speaker, dtype=np.int64)
        self._sentence = np.asarray(sentence, dtype=np.int64)
        self._stress = np.asarray(stress, dtype=np.int64)
        self._start_smp = self._start_s * self.sample_rate
        self._end_smp = self._end_s * self.sample_rate
        self._sent_start_smp, self._sent_end_smp = self._sentence_spans()
        # First sample of each segment, then the first sample past the plan.
        self._bounds = np.append(np.ceil(self._start_smp), np.ceil(self._end_smp[-1]))
        self._bounds_list = self._bounds.astype(np.int64).tolist()  # bisect on ints is fastest

    @classmethod
    def from_rows(cls, rows, *, time_scale: float, sample_rate: int) -> ProsodyPlan:
        """Build from (start_s, end_s, voiced, syllables, speaker, sentence, stress) rows."""
        cols = list(zip(*rows))
        return cls(start_s=np.array(cols[0]) * time_scale, end_s=np.array(cols[1]) * time_scale,
                   voiced=np.array(cols[2]), syllables=np.array(cols[3]),
                   speaker=np.array(cols[4]), sentence=np.array(cols[5]),
                   stress=np.array(cols[6]), sample_rate=sample_rate)

    def _sentence_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Per segment: first-word start and last-word end of its sentence, in samples."""
        starts = np.zeros(len(self._start_s))
        ends = np.ones(len(self._start_s))
        voiced_idx = np.flatnonzero(self._voiced)
        if voiced_idx.size == 0:
            return starts, ends
        sent = self._sentence[voiced_idx]
        # Sentence numbers only grow along the timeline, so each sentence is one run.
        first = np.r_[0, np.flatnonzero(np.diff(sent)) + 1]
        last = np.r_[first[1:] - 1, sent.size - 1]
        s_start = self._start_smp[voiced_idx[first]]
        s_end = self._end_smp[voiced_idx[last]]
        run_of = np.searchsorted(sent[first], self._sentence).clip(0, first.size - 1)
        return s_start[run_of], np.maximum(s_end[run_of], s_start[run_of] + 1.0)

    # -- whole-plan facts ---------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return float(self._end_s[-1])

    @property
    def n_samples(self) -> int:
        return int(self._bounds[-1])

    def n_frames(self, samples_per_frame: int) -> int:
        """Frames needed to cover the plan (the last one partly past the end)."""
        return -(-self.n_samples // int(samples_per_frame))

    @property
    def n_speakers(self) -> int:
        return int(self._speaker.max()) + 1

    @property
    def n_words(self) -> int:
        return int(self._voiced.sum())

    @property
    def voiced_fraction(self) -> float:
        """Share of the plan's duration that is voiced (words rather than pauses)."""
        spans = self._end_s - self._start_s
        return float(spans[self._voiced].sum() / self.duration_s)

    @cached_property
    def segments(self) -> list[Segment]:
        """The timeline as `Segment` objects (built on first access, then kept)."""
        return [Segment(float(s), float(e), SegmentKind.VOICED if v else SegmentKind.PAUSE,
                        int(n), int(k), int(q))
                for s, e, v, n, k, q in zip(self._start_s, self._end_s, self._voiced,
                                            self._syllables, self._speaker, self._sentence)]

    # -- per-block queries --------------------------------------------------------------
    def _spans(self, start_sample: int, n: int) -> list[tuple[int, int, int]]:
        """(segment, offset, count) runs covering samples [start_sample, start_sample + n).

        Segment index `len(segments)` stands for "past the end of the plan". Sample p belongs to
        segment j when ceil(start_smp[j]) <= p < ceil(start_smp[j + 1]). One bisection, then a
        walk over the handful of segments in the block: nothing is computed per plan sample.
        """
        if start_sample < 0 or n < 0:
            raise ValueError(f"block must be non-negative, got start={start_sample}, n={n}")
        bounds = self._bounds_list
        seg = bisect.bisect_right(bounds, start_sample) - 1
        spans, offset = [], 0
        while offset < n:
            stop = n if seg + 1 >= len(bounds) else min(n, bounds[seg + 1] - start_sample)
            if stop > offset:
                spans.append((seg, offset, stop - offset))
                offset = stop
            seg += 1
        return spans

    def block(self, start_sample: int, n: int) -> PlanBlock:
        """Envelope, speaker and sentence progress of samples [start_sample, start_sample + n)."""
        envelope = np.zeros(n, dtype=np.float32)
        speaker = np.empty(n, dtype=np.int64)
        progress = np.empty(n, dtype=np.float64)
        last = len(self._voiced) - 1
        for seg, offset, count in self._spans(start_sample, n):
            part = slice(offset, offset + count)
            if seg <= last and self._voiced[seg]:
                envelope[part] = self._word_envelope(seg, start_sample + offset, count)
            seg = min(seg, last)
            speaker[part] = self._speaker[seg]
            s0, s1 = self._sent_start_smp[seg], self._sent_end_smp[seg]
            first = start_sample + offset
            progress[part] = (np.arange(first, first + count, dtype=np.float64) - s0) / (s1 - s0)
        np.clip(progress, 0.0, 1.0, out=progress)
        return PlanBlock(envelope, speaker, progress)

    def envelope(self, start_sample: int, n: int) -> np.ndarray:
        """Amplitude envelope (0..1, float32) of samples [start_sample, start_sample + n)."""
        return self.block(start_sample, n).envelope

    def speaker_at(self, start_sample: int, n: int) -> np.ndarray:
        """Speaker index (int64) of each sample; past the end, the last segment's speaker."""
        return self.block(start_sample, n).speaker

    def sentence_progress(self, start_sample: int, n: int) -> np.ndarray:
        """How far through its sentence each sample is (0 at the first word, 1 at the last)."""
        return self.block(start_sample, n).progress

    @staticmethod
    def _clip_index(position: float, start_sample: int, n: int) -> int:
        """Offset in the block of the first sample at or after `position` (clipped to 0..n)."""
        return min(max(math.ceil(position) - start_sample, 0), n)

    def _word_envelope(self, seg: int, start_sample: int, n: int) -> np.ndarray:
        word_start = self._start_smp[seg]
        span = self._end_smp[seg] - word_start
        syllables = int(self._syllables[seg])
        # Positions are computed per absolute sample index (integer, exact) so that a sample's
        # value does not depend on how the plan is cut into blocks; the sin runs in float32,
        # many times faster than float64 and exact enough for an envelope.
        rel = np.arange(start_sample, start_sample + n, dtype=np.float64)
        rel -= word_start
        syl_pos = rel * (syllables / span)
        syl_pos -= np.floor(syl_pos)
        syl_pos *= np.pi
        bump = np.sin(syl_pos.astype(np.float32))
        bump *= bump
        bump *= np.float32((1.0 - SYLLABLE_FLOOR) * UNSTRESSED_GAIN)
        bump += np.float32(SYLLABLE_FLOOR * UNSTRESSED_GAIN)
        # Region boundaries are absolute sample indices too (ceil of a fixed float), for the
        # same reason: the stressed syllable at full height, then the word-edge ramps.
        stress = int(self._stress[seg])
        lo, hi = (self._clip_index(word_start + k * span / syllables, start_sample, n)
                  for k in (stress, stress + 1))
        bump[lo:hi] *= np.float32(1.0 / UNSTRESSED_GAIN)
        edge_smp = EDGE_S * self.sample_rate
        attack_end = self._clip_index(word_start + edge_smp, start_sample, n)
        release_start = self._clip_index(word_start + span - edge_smp, start_sample, n)
        for lo, hi in ((0, attack_end), (release_start, n)):
            if lo < hi:  # raised-cosine attack/release where the block touches a word edge
                r = rel[lo:hi]
                x = np.clip(np.minimum(r, span - r) / edge_smp, 0.0, 1.0)
                bump[lo:hi] *= (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)
        return bump

    def __repr__(self) -> str:
        return (f"ProsodyPlan(duration_s={self.duration_s:.2f}, words={self.n_words}, "
                f"speakers={self.n_speakers}, voiced_fraction={self.voiced_fraction:.2f})")

