"""Text front end of the reference runtime: a tokenizer and a prosody plan.

The reference model has random weights, so nothing here tries to be linguistically right. What
matters is that the text drives the audio the way it would in a real TTS model:

* `Tokenizer` turns text into a deterministic stream of ids (word pieces hashed into the
  vocabulary), so the LM runs on inputs whose length follows the text;
* `plan_prosody` turns text into a timeline of voiced words and pauses (lead-in, word gaps,
  punctuation, paragraphs, speaker turns) whose durations follow an estimated syllable count.
  The synthesiser shapes its output with the plan's amplitude envelope, which is what gives the
  audio speech-like amplitude statistics (and makes the monitor's blind SNR estimator usable).

Speaker tags: a line starting with ``Speaker 1:``, ``Speaker2:``, ``S1:`` or ``[S1]`` starts a
turn of that speaker. Speakers are numbered in order of first appearance (the first speaker
named is speaker 0, who gets the request's voice), whatever numbers the script uses. A line
without a tag continues the current speaker; a blank line is a paragraph break.

Every hash is stable across processes (zlib.crc32 / blake2b, never Python's salted ``hash``),
so the same text always gives the same ids and the same plan. The plan's data structure and its
per-block queries live in `vvbench.runtime.prosody` (re-exported here).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import zlib
from dataclasses import dataclass

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError, InputError
from vvbench.runtime.prosody import PlanBlock, ProsodyPlan, Segment, SegmentKind

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "N_SPECIAL",
    "PAD_ID",
    "PlanBlock",
    "ProsodyPlan",
    "Segment",
    "SegmentKind",
    "Tokenizer",
    "Turn",
    "count_syllables",
    "plan_prosody",
    "split_turns",
]

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPEAKER_BASE_ID = 8  # ids 8..15 mark speaker turns 0..7 (speakers beyond 8 wrap around)
N_SPEAKER_IDS = 8
N_SPECIAL = 16
_PIECE_CHARS = 4

_SPEAKER_RE = re.compile(
    r"^\s*(?:\[\s*(?:speaker|spk|s)\s*(\d+)\s*\]\s*:?|(?:speaker|spk|s)\s*(\d+)\s*:)\s*",
    re.IGNORECASE,
)
# Numbers first, so that "3.14" or "1,000" stay one token instead of ending a sentence.
_TOKEN_RE = re.compile(r"\d+(?:[.,:]\d+)*|[^\W_]+(?:['\u2019][^\W_]+)*|[^\w\s]")
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
# Latin, Greek and Cyrillic vowels (after accents are stripped).
_VOWELS_RE = re.compile("[aeiouy\u03b1\u03b5\u03b7\u03b9\u03bf\u03c5\u03c9"
                        "\u0430\u0435\u0451\u0438\u043e\u0443\u044b\u044d\u044e\u044f]+")
_CLAUSE_PUNCT = frozenset(",;:\u2014\u2013")
_SENTENCE_PUNCT = frozenset(".!?\u2026")

# Timing, in seconds at speed 1.0 (typical read speech: ~4.5-5.5 syllables per second).
LEAD_IN_S = 0.06  # short, so that the first audible audio comes early
WORD_GAP_S = (0.04, 0.08)
CLAUSE_PAUSE_S = 0.20
SENTENCE_PAUSE_S = 0.40
PARAGRAPH_PAUSE_S = 0.70
TURN_PAUSE_S = 0.50
TAIL_S = 0.20
SYLLABLE_S = (0.18, 0.22)


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")


def _unit(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for `key`."""
    return zlib.crc32(key.encode("utf-8")) / 2**32


@dataclass(frozen=True)
class Turn:
    """A stretch of text spoken by one speaker (index in order of first appearance)."""

    speaker: int
    text: str
    paragraph_start: bool  # a blank line came before it


def split_turns(text: str) -> list[Turn]:
    """Split a script into speaker turns and paragraphs (see the module docstring)."""
    turns: list[Turn] = []
    labels: dict[int, int] = {}
    speaker = 0
    for p_index, paragraph in enumerate(_PARAGRAPH_RE.split(_normalise(text))):
        first_line = True
        for line in paragraph.split("\n"):
            if not line.strip():
                continue
            match = _SPEAKER_RE.match(line)
            if match:
                label = int(match.group(1) or match.group(2))
                speaker = labels.setdefault(label, len(labels))
                body = line[match.end():]
                turns.append(Turn(speaker, body, paragraph_start=first_line and p_index > 0))
            elif turns and not first_line:
                last = turns[-1]
                turns[-1] = Turn(last.speaker, f"{last.text} {line}", last.paragraph_start)
            else:
                turns.append(Turn(speaker, line, paragraph_start=p_index > 0 and bool(turns)))
            first_line = False
    return turns


class Tokenizer:
    """Deterministic word-piece-ish tokenizer over a vocabulary of `vocab_size` ids.

    Ids 0..15 are special (pad=0, bos=1, eos=2, unk=3, speaker turns 8..15). A word is cut into
    pieces of four characters; each piece is hashed (blake2b) into [16, vocab_size), with a
    continuation mark on every piece after the first, as word-piece vocabularies do. Word -> ids
    goes through a bounded LRU cache (`cache_info()`), since real text repeats a small set of
    words. Thread-safe: the cache is `functools.lru_cache`.
    """

    def __init__(self, vocab_size: int, *, cache_size: int = 65536):
        if vocab_size < 2 * N_SPECIAL:
            raise ConfigError(f"vocab_size must be at least {2 * N_SPECIAL}, got {vocab_size}")
        self.vocab_size = vocab_size
        self._word_ids = functools.lru_cache(maxsize=cache_size)(self._hash_word)

    def _hash_word(self, word: str) -> tuple[int, ...]:
        span = self.vocab_size - N_SPECIAL
        ids = []
        for i in range(0, len(word), _PIECE_CHARS):
            piece = word[i:i + _PIECE_CHARS] if i == 0 else "##" + word[i:i + _PIECE_CHARS]
            digest = hashlib.blake2b(piece.encode("utf-8"), digest_size=8).digest()
            ids.append(N_SPECIAL + int.from_bytes(digest, "little") % span)
        return tuple(ids)

    def word_ids(self, word: str) -> tuple[int, ...]:
        """Ids of one (already normalised) word or punctuation mark."""
        return self._word_ids(word)

    def cache_info(self):
        """Hit/miss counts of the word cache (`functools._CacheInfo`)."""
        return self._word_ids.cache_info()

    def encode(self, text: str, *, add_special: bool = True) -> list[int]:
        """Ids for `text`: [bos] + per turn (speaker id, word pieces...) + [eos]."""
        ids = [BOS_ID] if add_special else []
        # Speaker ids only for scripts that name speakers: plain text stays plain word pieces.
        tagged = any(_SPEAKER_RE.match(line) for line in _normalise(text).split("\n"))
        for turn in split_turns(text):
            if tagged:
                ids.append(SPEAKER_BASE_ID + turn.speaker % N_SPEAKER_IDS)
            for token in _TOKEN_RE.findall(turn.text.lower()):
                ids.extend(self._word_ids(token))
        if add_special:
            ids.append(EOS_ID)
        return ids


def _number_syllables(token: str) -> int:
    """Spoken length of a number: ~1.5 syllables per integer digit, 'point' + one per decimal."""
    integer, _, decimals = token.replace(",", "").replace(":", ".").partition(".")
    n = max(1, round(1.5 * len(integer)))
    if decimals:
        n += 1 + len(decimals.replace(".", ""))
    return n


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF
            or 0xF900 <= code <= 0xFAFF)


def count_syllables(word: str) -> int:
    """Estimated syllable count of one word (vowel groups, with number/acronym/CJK rules)."""
    if word[0].isdigit():
        return _number_syllables(word)
    cjk = sum(1 for ch in word if _is_cjk(ch))
    if cjk:
        return cjk  # one syllable per CJK character (kana, hanzi, hangul blocks)
    if word.isupper() and 2 <= len(word) <= 5 and word.isalpha():
        return sum(3 if ch == "W" else 1 for ch in word)  # acronyms are spelled: "W" is "dub-ble-u"
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", word.lower())
                     if not unicodedata.combining(ch))
    n = len(_VOWELS_RE.findall(folded))
    if n > 1 and folded.endswith("e") and not folded.endswith(("le", "ee", "ye")):
        n -= 1  # silent final e: "make", "time"
    if n == 0:
        n = max(1, round(len(folded) / 3))  # "hmm", "nth", scripts without listed vowels
    return n


class _PlanBuilder:
    """Accumulates segments in seconds at speed 1.0; `plan_prosody` scales them."""

    def __init__(self, salt: str):
        self.salt = salt
        self.rows: list[tuple[float, float, bool, int, int, int, int]] = []
        self.t = 0.0
        self.sentence = 0
        self.speaker = 0
        self.pending = 0.0  # the longest pause asked for since the last word
        self.sentence_ended = False
        self.words = 0

    def pause(self, duration_s: float) -> None:
        self.rows.append((self.t, self.t + duration_s, False, 0, self.speaker, self.sentence, 0))
        self.t += duration_s

    def word(self, token: str, speaker: int) -> None:
        syllables = count_syllables(token)
        key = f"{self.salt}|{token.lower()}"
        syllable_s = SYLLABLE_S[0] + (SYLLABLE_S[1] - SYLLABLE_S[0]) * _unit(key)
        if self.words:
            gap = WORD_GAP_S[0] + (WORD_GAP_S[1] - WORD_GAP_S[0]) * _unit(f"{key}|{self.words}")
            self.pause(max(self.pending, gap))
        if self.sentence_ended:
            self.sentence += 1  # after the pause, so a pause belongs to the sentence it ends
            self.sentence_ended = False
        self.speaker = speaker
        stress = zlib.crc32(key.encode("utf-8")) % syllables
        duration = syllables * syllable_s
        self.rows.append((self.t, self.t + duration, True, syllables, speaker, self.sentence,
                          stress))
        self.t += duration
        self.pending = 0.0
        self.words += 1

    def boundary(self, pause_s: float, *, new_sentence: bool) -> None:
        if not self.words:
            return  # punctuation before the first word does not delay the first audio
        self.pending = max(self.pending, pause_s)
        self.sentence_ended = self.sentence_ended or new_sentence


def plan_prosody(text: str, *, speed: float = 1.0, sample_rate: int = SAMPLE_RATE,
                 voice: str | None = None) -> ProsodyPlan:
    """Plan the timeline of `text`: lead-in, voiced words, pauses, tail; all divided by `speed`.

    `voice` salts the small per-word timing variations (each voice has its own rhythm; the mean
    rate does not depend on it). Raises `InputError` for empty text, text without a speakable
    word, or a speed that is not a positive finite number.
    """
    if not text or not text.strip():
        raise InputError("input text is empty", param="input")
    if not (speed > 0 and speed != float("inf")):
        raise InputError(f"speed must be a positive number, got {speed!r}", param="speed")
    builder = _PlanBuilder(salt=voice or "")
    builder.pause(LEAD_IN_S)
    for turn in split_turns(text):
        if builder.words and turn.speaker != builder.speaker:
            builder.boundary(TURN_PAUSE_S, new_sentence=True)
        if turn.paragraph_start:
            builder.boundary(PARAGRAPH_PAUSE_S, new_sentence=True)
        for token in _TOKEN_RE.findall(turn.text):
            if token[0].isalnum():
                builder.word(token, turn.speaker)
            elif token in _SENTENCE_PUNCT:
                builder.boundary(SENTENCE_PAUSE_S, new_sentence=True)
            elif token in _CLAUSE_PUNCT:
                builder.boundary(CLAUSE_PAUSE_S, new_sentence=False)
            # other symbols (quotes, brackets, emoji) are silent
    if not builder.words:
        raise InputError("input text contains no speakable words", param="input")
    builder.pause(max(builder.pending, TAIL_S))
    return ProsodyPlan.from_rows(builder.rows, time_scale=1.0 / speed, sample_rate=sample_rate)
