"""A light suffix-stripping stemmer for Ukrainian (Snowball has none).

After the Russian Porter design as adapted for Ukrainian by Tochilkin et al. ("ukrstemmer"): the word is
split after its first vowel; only that tail (RV) loses suffixes, in four steps:

1. a perfective gerund (-вши, -вшись, -ив, ...); otherwise a reflexive ending (-ся, -сь, -си), then an
   adjective ending (then a participle one), or failing that a verb ending, or failing that a noun one;
2. a final -и;
3. -ость when the tail still looks derivational (vowel/consonant/vowel before it);
4. -нн → -н; otherwise a superlative -ейш(е) (then -нн → -н); otherwise a final soft sign.

Suffixes are tried longest first (a regex anchored at the end finds the leftmost, i.e. longest, match).
Apostrophes are dropped first, so м'ясо and мясо share a stem. The input is expected folded (lower case,
ё → е, one apostrophe form) but anything is accepted; words without a Ukrainian vowel come back as-is.
It is deliberately light: related forms such as протест/протести/протестів/протестом, Україна/України/
Україні/Україною or війна/війни/війні share a stem, derivations (протестувальники) need not.
"""

from __future__ import annotations

import re

__all__ = ["stem"]

_VOWELS = "аеиоуюяіїє"
_FIRST_VOWEL = re.compile(f"[{_VOWELS}]")
_APOSTROPHES = str.maketrans({"'": None, "’": None, "ʼ": None, "‘": None, "ё": "е", "ъ": "ї"})

_PERFECTIVE_GERUND = re.compile(r"(?:(?<=[ая])(?:в|вши|вшись)|ив|ивши|ившись|ыв|ывши|ывшись)$")
_REFLEXIVE = re.compile(r"(?:ся|сь|си)$")
_ADJECTIVE = re.compile(
    r"(?:ими|ій|ий|а|е|ова|ове|ів|є|їй|єє|еє|я|ім|ем|им|их|іх|ою|йми|іми|у|ю|ого|ому|ої)$"
)
_PARTICIPLE = re.compile(r"(?:ий|ого|ому|им|ім|а|ій|у|ою|і|их|йми)$")
_VERB = re.compile(r"(?:сь|ся|ив|ать|ять|у|ю|ав|али|учи|ячи|вши|ши|е|ме|ати|яти|є)$")
_NOUN = re.compile(
    r"(?:а|ев|ов|е|ями|ами|еи|и|ей|ой|ий|й|иям|ям|ием|ем|ам|ом|о|у|ах|иях|ях|ы|ь|ию|ью|ю|ия|ья|я|і|ові|ї"
    r"|ею|єю|ою|є|еві|єм|ів|їв)$"
)
_FINAL_I = re.compile(r"и$")
_DERIVATIONAL = re.compile(f"[^{_VOWELS}][{_VOWELS}]+[^{_VOWELS}]+[{_VOWELS}].*(?<=о)сть?$")
_OST = re.compile(r"ость?$")
_DOUBLE_N = re.compile(r"нн$")
_SUPERLATIVE = re.compile(r"ейше?$")
_SOFT_SIGN = re.compile(r"ь$")


def _strip(pattern: re.Pattern[str], rv: str, repl: str = "") -> tuple[str, bool]:
    new = pattern.sub(repl, rv, count=1)
    return new, new != rv


def stem(word: str) -> str:
    """The stem of one Ukrainian word (expected folded: lower case)."""
    word = word.lower().translate(_APOSTROPHES)
    first = _FIRST_VOWEL.search(word)
    if first is None:
        return word
    head, rv = word[: first.end()], word[first.end() :]

    # Step 1
    rv, done = _strip(_PERFECTIVE_GERUND, rv)
    if not done:
        rv, _ = _strip(_REFLEXIVE, rv)
        rv, done = _strip(_ADJECTIVE, rv)
        if done:
            rv, _ = _strip(_PARTICIPLE, rv)
        else:
            rv, done = _strip(_VERB, rv)
            if not done:
                rv, _ = _strip(_NOUN, rv)
    # Step 2
    rv, _ = _strip(_FINAL_I, rv)
    # Step 3
    if _DERIVATIONAL.search(rv):
        rv, _ = _strip(_OST, rv)
    # Step 4
    rv, done = _strip(_DOUBLE_N, rv, "н")
    if not done:
        rv, done = _strip(_SUPERLATIVE, rv)
        if done:
            rv, _ = _strip(_DOUBLE_N, rv, "н")
        else:
            rv, _ = _strip(_SOFT_SIGN, rv)
    return head + rv
