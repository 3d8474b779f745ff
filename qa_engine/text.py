"""Chinese text handling: normalisation, jieba with the tax dictionary, synonyms and homophones."""

from __future__ import annotations

import hashlib
import logging
import marshal
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ParseError

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
WHITESPACE = re.compile(r"\s+")
HAN = re.compile(r"[\u4e00-\u9fff]")
HAN_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
WORD_CHARS = re.compile(r"[\u4e00-\u9fffA-Za-z0-9.%]")
SYNONYM_WEIGHT = 0.8
HOMOPHONE_WEIGHT = 0.6
BIGRAM_WEIGHT = 0.4
BIGRAM_PREFIX = "#"  # character bigrams live beside words in one vocabulary
PINYIN_WINDOW = (2, 5)


def normalise(text: str) -> str:
    """Full-width to half-width, drop control characters, fold whitespace, lower-case Latin."""
    text = unicodedata.normalize("NFKC", text)
    text = CONTROL_CHARS.sub("", text)
    return WHITESPACE.sub(" ", text).strip().lower()


@dataclass
class Dictionary:
    """The curated tax vocabulary: jieba user words, synonym groups and stopwords."""

    terms: list[tuple[str, int]] = field(default_factory=list)
    synonyms: list[list[str]] = field(default_factory=list)  # [canonical, variant, ...]
    stopwords: set[str] = field(default_factory=set)
    # (type, cues in a question, markers in an article that answers that type of question)
    question_types: list[tuple[str, list[str], list[str]]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path) -> "Dictionary":
        terms, synonyms, stopwords, question_types = [], [], set(), []
        terms_file, synonyms_file, stopwords_file, question_types_file = (
            folder / "tax_terms.txt",
            folder / "synonyms.tsv",
            folder / "stopwords.txt",
            folder / "question_types.tsv",
        )
        if terms_file.exists():
            for line in terms_file.read_text("utf-8").splitlines():
                parts = line.split()
                if parts and not parts[0].startswith("#"):
                    freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 10000
                    terms.append((parts[0], freq))
        if synonyms_file.exists():
            for line in synonyms_file.read_text("utf-8").splitlines():
                group = [normalise(cell) for cell in line.split("\t") if cell.strip()]
                if len(group) >= 2 and not group[0].startswith("#"):
                    synonyms.append(group)
        if stopwords_file.exists():
            stopwords = {w.strip() for w in stopwords_file.read_text("utf-8").splitlines() if w.strip()}
        if question_types_file.exists():
            for number, line in enumerate(question_types_file.read_text("utf-8").splitlines(), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                cells = line.split("\t")
                cues, markers = ([normalise(w) for w in cell.split("|") if w.strip()] for cell in (cells + ["", ""])[1:3])
                if len(cells) != 3 or not cells[0].strip() or not cues or not markers:
                    raise ParseError(f"{question_types_file}, line {number}: expected a type, its question cues and "
                                     "its article markers, TAB-separated (cues and markers |-separated)")
                question_types.append((cells[0].strip(), cues, markers))
        return cls(terms, synonyms, stopwords, question_types)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for word, freq in self.terms:
            digest.update(f"t\t{word}\t{freq}\n".encode())
        for group in self.synonyms:
            digest.update(("s\t" + "\t".join(group) + "\n").encode())
        for word in sorted(self.stopwords):
            digest.update(f"w\t{word}\n".encode())
        for name, cues, markers in self.question_types:
            digest.update(f"q\t{name}\t{'|'.join(cues)}\t{'|'.join(markers)}\n".encode())
        return digest.hexdigest()[:16]


@dataclass
class Query:
    """A question as retrieval uses it."""

    text: str  # normalised
    words: list[str]  # search-mode words, without stopwords
    key_terms: set[str]
    expansions: list[tuple[str, float]]  # (canonical wording, weight) for synonyms and homophones
    terms: dict[str, float]  # weighted BM25 query terms
    heard: list[str]  # jieba's segmentation of the question as heard, before any term was put right


class TextAnalyzer:
    """Turns text into BM25 terms, and questions into weighted query terms."""

    def __init__(self, dictionary: Dictionary):
        self.dictionary = dictionary
        self._jieba = jieba_tokenizer()
        for word, freq in dictionary.terms:
            self._jieba.add_word(word, freq)
        for group in dictionary.synonyms:
            for word in group:
                if HAN.search(word) and len(word) <= 8:
                    self._jieba.add_word(word, 20000)
        self._variants = sorted(
            ((variant, group[0]) for group in dictionary.synonyms for variant in group[1:]),
            key=lambda pair: -len(pair[0]),
        )
        self._variants_by_first: dict[str, list[tuple[str, str]]] = {}
        self._canonicals_of_variant: dict[str, list[str]] = {}
        for variant, canonical in self._variants:
            self._variants_by_first.setdefault(variant[0], []).append((variant, canonical))
            self._canonicals_of_variant.setdefault(variant, []).append(canonical)
        self._phrase_words: dict[str, list[str]] = {}  # expansion phrases come from a finite vocabulary
        self._homophones: dict[str, list[str]] = {}
        self._tones: dict[str, str] = {}
        self._canonical = {word: group[0] for group in dictionary.synonyms for word in group}
        self._domain_terms = {word for word, _ in dictionary.terms} | set(self._canonical)

    def tokens(self, text: str) -> list[str]:
        """Index terms: jieba search-mode words (without stopwords) and character bigrams.

        Bigrams catch what word segmentation splits differently in a question and in the law.
        """
        return self.words(text) + character_bigrams(normalise(text))

    def tokens_and_key_terms(self, text: str) -> tuple[list[str], set[str]]:
        """``tokens`` and ``key_terms`` of a text, segmenting it once."""
        cleaned = normalise(text)
        segments = self._jieba.lcut(cleaned)
        return self._search_words(segments) + character_bigrams(cleaned), self._key_terms(segments)

    def analyse(self, question: str) -> Query:
        """Everything retrieval needs of a question. A tax term that a phone transcript wrote with
        same-sounding characters is put right first (观税 -> 关税)."""
        heard = normalise(question)
        heard_segments = segments = self._jieba.lcut(heard)
        sound_alikes = self._sound_alikes(heard, segments)
        text, untouched = self._put_right(heard, sound_alikes)
        if text != heard:
            segments = self._jieba.lcut(text)
        words = self._search_words(segments)
        expansions = self._expansions(text, untouched)
        key_terms = self._key_terms(segments + [phrase for phrase, _ in expansions])  # 滞纳斤 names 滞纳金 too
        return Query(text, words, key_terms, expansions, self.query_terms(text, expansions, words), heard_segments)

    def words(self, text: str) -> list[str]:
        """Search-mode words, without stopwords."""
        return self._search_words(self._jieba.lcut(normalise(text)))

    def _search_words(self, segments: list[str]) -> list[str]:
        """jieba's search mode from its segmentation: each word after its 2- and 3-character
        parts that are words too (what ``cut_for_search`` yields)."""
        known, stop = self._jieba.FREQ, self.dictionary.stopwords
        found = []
        for word in segments:
            if len(word) > 2:
                found += [word[i : i + 2] for i in range(len(word) - 1) if known.get(word[i : i + 2])]
            if len(word) > 3:
                found += [word[i : i + 3] for i in range(len(word) - 2) if known.get(word[i : i + 3])]
            found.append(word)
        return [token for token in found if token not in stop and WORD_CHARS.search(token)]

    def key_terms(self, text: str) -> set[str]:
        """The tax terms a text names, in canonical form: what two phrasings must share to ask
        the same thing (个人所得税 and 企业所得税 differ even where the rest of the words agree)."""
        return self._key_terms(self._jieba.lcut(normalise(text)))

    def _key_terms(self, segments: list[str]) -> set[str]:
        return {self._canonical.get(word, word) for word in segments if word in self._domain_terms}

    def question_types(self, question: str) -> set[str]:
        """What kinds of answer a question asks for (a deadline, an amount, a relief...)."""
        text = normalise(question)
        return {name for name, cues, _ in self.dictionary.question_types if any(cue in text for cue in cues)}

    def answer_types(self, article_text: str) -> set[str]:
        """What kinds of question an article can answer, from its wording."""
        text = normalise(article_text)
        return {name for name, _, markers in self.dictionary.question_types if any(m in text for m in markers)}

    def homophone_table(self, vocabulary: set[str]) -> dict:
        """Known words indexed by toneless pinyin, and the reading of every common character:
        made at build time (it needs pypinyin), stored with the index, read by ``use_homophones``."""
        words = {w for w in vocabulary if len(w) >= 2 and HAN.fullmatch(w[0]) and HAN.search(w[-1])}
        words |= {w for w, _ in self.dictionary.terms if len(w) >= 2}
        words |= {w for group in self.dictionary.synonyms for w in group if len(w) >= 2 and HAN.search(w)}
        tones = character_readings()
        readings = {character: reading.rstrip("12345") for character, reading in tones.items()}
        by_sound: dict[str, list[str]] = {}
        for word in sorted(words):
            if len(word) <= PINYIN_WINDOW[1] and all(c in readings for c in word):
                by_sound.setdefault("".join(readings[c] for c in word), []).append(word)
        return {"readings": readings, "tones": tones, "by_sound": by_sound,
                "known_words": sorted(words)}

    def sounds(self, text: str) -> str:
        """The syllables of a text's Chinese characters in pinyin with tones, one a character,
        separated by spaces, and "|" where something else breaks the run (tou2 su4 | ...);
        "" before ``use_homophones``."""
        tones = self._tones
        return " ".join(tones.get(c, "|") for c in normalise(text)) if tones else ""

    def use_homophones(self, table: dict) -> None:
        """Repair speech-recognition homophone errors with a table from ``homophone_table``."""
        self._readings = table["readings"]
        self._tones = table["tones"]
        self._homophones = table["by_sound"]
        self._known_words = set(table["known_words"])

    def query_terms(self, question: str, expansions: list[tuple[str, float]] | None = None,
                    words: list[str] | None = None) -> dict[str, float]:
        """Weighted terms for a question: its own words, their canonical synonyms, homophone repairs.
        ``expansions`` and ``words``, where the caller has them, are the question's."""
        text = normalise(question)
        weights: dict[str, float] = {}
        for token in self.words(text) if words is None else words:
            weights[token] = 1.0
        for phrase, weight in self.expansions(text) if expansions is None else expansions:
            if phrase not in self._phrase_words:
                self._phrase_words[phrase] = self.words(phrase)
            for token in self._phrase_words[phrase]:
                weights.setdefault(token, weight)
        for bigram in character_bigrams(text):
            weights.setdefault(bigram, BIGRAM_WEIGHT)
        return weights

    def expansions(self, text: str) -> list[tuple[str, float]]:
        """Canonical law wording for the synonyms and homophones found in ``text``."""
        return self._expansions(text, [word for word, _, _, _ in self._sound_alikes(text, self._jieba.lcut(text))])

    def _expansions(self, text: str, sound_alikes: list[str]) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        named = [pair for character in dict.fromkeys(text) for pair in self._variants_by_first.get(character, ())
                 if pair[0] in text]
        for variant, canonical in sorted(named, key=lambda pair: -len(pair[0])):
            found.append((canonical, SYNONYM_WEIGHT))
        for word in dict.fromkeys(w for w in sound_alikes if w not in text):
            found.append((word, HOMOPHONE_WEIGHT))
            for canonical in self._canonicals_of_variant.get(word, ()):
                found.append((canonical, HOMOPHONE_WEIGHT))
        return found

    def _sound_alikes(self, text: str, segments: list[str]) -> list[tuple[str, int, int, bool]]:
        """Known words that sound like a stretch of ``text`` outside the words the corpus knows:
        (word, start, end, whether the stretch is whole words of ``segments``, jieba's segmentation
        of ``text``)."""
        if not self._homophones:
            return []
        boundaries = {0}
        known_word_end = [0] * len(text)  # where the known word a character belongs to ends
        end = 0
        for word in segments:
            start, end = end, end + len(word)
            boundaries.add(end)
            if len(word) >= 2 and word in self._known_words:
                known_word_end[start:end] = [end] * len(word)
        sounds = [self._readings.get(c, "?") for c in text]
        found = []
        low, high = PINYIN_WINDOW
        for run in re.finditer(r"[\u4e00-\u9fff]+", text):
            boundaries |= {run.start(), run.end()}  # a letter or digit next to Chinese ends a word
            for size in range(low, high + 1):
                for start in range(run.start(), run.end() - size + 1):
                    end = start + size
                    if end <= known_word_end[start]:
                        continue  # inside a word the corpus knows, spelt right
                    whole_words = start in boundaries and end in boundaries
                    for word in self._homophones.get("".join(sounds[start:end]), []):
                        found.append((word, start, end, whole_words))
        return found

    def _put_right(self, text: str, sound_alikes: list[tuple[str, int, int, bool]]) -> tuple[str, list[str]]:
        """``text`` with each stretch that sounds like one tax term and no other put right: a
        transcript's slip keeps part of the word and its tones (观税 -> 关税; 不申报 is not 补申报),
        is whole words of the segmentation and none that jieba knows (发钱 stays). Longest
        stretches first, none overlapping. Also the sound-alike words of the stretches left as
        heard: those of a stretch put right sound like characters no longer in the question."""
        terms_of_stretch: dict[tuple[int, int], set[str]] = {}
        for word, start, end, whole_words in sound_alikes:
            stretch = text[start:end]
            if (whole_words and word in self._domain_terms and word != stretch and not self._jieba.FREQ.get(stretch)
                    and any(a == b for a, b in zip(word, stretch))
                    and all(self._tones.get(a) == self._tones.get(b) for a, b in zip(word, stretch))):
                terms_of_stretch.setdefault((start, end), set()).add(word)
        replaced = [False] * len(text)
        repairs = []
        for (start, end), terms in sorted(terms_of_stretch.items(), key=lambda item: item[0][0] - item[0][1]):
            if len(terms) == 1 and not any(replaced[start:end]):
                replaced[start:end] = [True] * (end - start)
                repairs.append((start, end, terms.pop()))
        untouched = [word for word, start, end, _ in sound_alikes if not any(replaced[start:end])]
        for start, end, word in sorted(repairs, reverse=True):
            text = text[:start] + word + text[end:]
        return text, untouched


def jieba_tokenizer():
    """A jieba tokenizer with its main dictionary, read from jieba's cache of it with
    ``marshal.loads``: jieba's own ``initialize`` reads the open file with ``marshal.load``,
    which fetches it piece by piece (0.8 s of a 2 s cold start instead of 0.25 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    cache = Path(tokenizer.tmp_dir or tempfile.gettempdir()) / "jieba.cache"  # where jieba keeps it
    try:
        tokenizer.FREQ, tokenizer.total = marshal.loads(cache.read_bytes())
        tokenizer.initialized = True
    except (OSError, EOFError, ValueError, TypeError):
        tokenizer.initialize()  # no cache yet, or a broken one: jieba builds the dictionary and writes it
    return tokenizer


def character_bigrams(text: str) -> list[str]:
    return [BIGRAM_PREFIX + run[i : i + 2] for run in HAN_RUN.findall(text) for i in range(len(run) - 1)]


def character_readings() -> dict[str, str]:
    """Pinyin of each CJK character with its tone's number (guan1; none for the neutral tone): its
    usual reading, so that a word and a question spell the same sound the same way."""
    from pypinyin import Style, lazy_pinyin

    characters = [chr(code) for code in range(0x4E00, 0xA000)]
    return dict(zip(characters, lazy_pinyin("".join(characters), style=Style.TONE3)))
