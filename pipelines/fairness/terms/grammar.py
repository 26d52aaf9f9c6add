"""The few rules of English a term swap needs to read grammatically in the common cases.

* plurals of the nouns in the term lists (``woman -> women``, ``senior citizen -> senior citizens``);
* ``a``/``an`` before the swapped-in word (``an old man -> a young man``);
* the case of the word that was replaced (``Jews``, ``JEWS``, ``jews``);
* a counterpart that depends on the next word (``her book -> his book``, ``saw her. -> saw him.``).

Examples
--------
>>> pluralize("woman"), pluralize("senior citizen"), pluralize("baby"), pluralize("german")
('women', 'senior citizens', 'babies', 'germans')
>>> indefinite_article("elderly"), indefinite_article("young"), indefinite_article("80-year-old")
('an', 'a', 'an')
>>> match_case("African Americans", "white americans")
'White Americans'
"""

from __future__ import annotations

import re

__all__ = ["pluralize", "indefinite_article", "match_case", "choose_form", "FUNCTION_WORDS"]

_IRREGULAR = {
    "person": "people", "child": "children", "woman": "women", "man": "men", "foot": "feet", "tooth": "teeth",
    "mouse": "mice", "goose": "geese", "ox": "oxen", "fiance": "fiances", "fiancee": "fiancees",
}
#: Words ending in "man" whose plural is "-mans".
_MANS = {"human", "german", "roman", "norman", "shaman", "talisman", "caiman", "ottoman", "walkman", "batman"}
#: Words ending in a consonant + "o" or in "s" that take a plain "s", or invariant words.
_INVARIANT = {"chinese", "japanese", "vietnamese", "portuguese", "lebanese", "senegalese", "burmese", "swiss",
              "sheep", "deer", "series", "species", "aircraft", "police", "people", "children", "staff"}

#: Words after which "her" is an object pronoun ("saw her and ...") rather than a determiner ("her book").
FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet for to of in on at by with from into onto about as than then that this these those
there here when where while if because since until after before again also too very really just not no yes up down
out off over under away back is are was were be been being am do does did have has had will would can could should
may might must shall it its it's he she they them we us you i me my your our their his him who whom which what why
how all any some every each more most less least much many few anyway either neither both same such only even
ever never always often sometimes already still now today tonight tomorrow yesterday s t
""".split())

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def pluralize(noun: str) -> str:
    """The plural of a noun or noun phrase (the last word is inflected)."""
    head, _, last = noun.rpartition(" ")
    lower = last.lower()
    if lower in _IRREGULAR:
        plural = _IRREGULAR[lower]
    elif lower in _INVARIANT or lower.endswith("ese"):
        plural = lower
    elif lower.endswith("man") and lower not in _MANS:
        plural = lower[:-3] + "men"
    elif re.search(r"(s|x|z|ch|sh)$", lower):
        plural = lower + "es"
    elif re.search(r"[^aeiou]y$", lower):
        plural = lower[:-1] + "ies"
    else:
        plural = lower + "s"
    plural = match_case(last, plural)
    return f"{head} {plural}" if head else plural


def indefinite_article(word: str) -> str:
    """``a`` or ``an`` before ``word``, by its first sound (spelling rules with the common exceptions)."""
    w = word.strip().lower()
    if not w:
        return "a"
    digits = re.match(r"\d+", w)
    if digits:
        n = digits.group(0)
        return "an" if n.startswith("8") or n in ("11", "18") or (len(n) in (5, 6) and n.startswith(("11", "18"))) \
            else "a"
    if w.startswith(("uni", "use", "usu", "uti", "eu", "one", "once", "ufo", "ewe", "uk", "us ")):
        return "a"
    if w.startswith(("hour", "honest", "honor", "honour", "heir")):
        return "an"
    if word[:1].isupper() and len(word) > 1 and word.isupper():  # an acronym, read letter by letter
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if w[0] in "aeiou" else "a"


def match_case(found: str, target: str) -> str:
    """``target`` written in the case pattern of ``found``: all caps, capitalized words, or as it is."""
    if len(found) > 1 and found.isupper():
        return target.upper()
    found_words = re.split(r"[\s-]+", found)
    target_parts = re.split(r"([\s-]+)", target)
    if len(found_words) == len(target_parts[::2]) and len(found_words) > 1:
        target_parts[::2] = [match_case(f, t) for f, t in zip(found_words, target_parts[::2])]
        return "".join(target_parts)
    if found[:1].isupper():
        return target[:1].upper() + target[1:]
    if found.islower():
        return target.lower() if target[:1].isupper() and not target.isupper() else target
    return target


def choose_form(target: str, following: str) -> str:
    """Pick one of ``target``'s alternatives (``"his|him"``) from the text that follows the swapped word.

    The first alternative is used before a content word (a noun phrase follows: a determiner), the
    second before punctuation, the end of the text, or a function word (an object or a standalone pronoun).

    >>> choose_form("his|him", " book was there"), choose_form("his|him", " and left"), choose_form("his|him", ".")
    ('his', 'him', 'him')
    """
    if "|" not in target:
        return target
    determiner, pronoun = target.split("|", 1)
    m = re.match(r"[ \t]*(" + _WORD.pattern + ")", following)
    if m is None:
        return pronoun
    return pronoun if m.group(1).lower() in FUNCTION_WORDS else determiner
