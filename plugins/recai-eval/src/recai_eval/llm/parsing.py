"""Reading model output: lists of titles, lettered choices, and a judge's verdict and scores.

Models answer in many shapes; these parsers accept the common ones and say when they find
nothing (an empty list, ``None``), which the tasks count as a failed sample.

>>> parse_list("Sure! Here you go:\\n1. Heat (1995)\\n2) **Toy Story**\\n3. \\"Fargo\\" - a classic")
['Heat (1995)', 'Toy Story', '"Fargo" - a classic']
>>> parse_list("Heat<end>Fargo<end>")
['Heat', 'Fargo']
>>> parse_list("Matrix, The (1999), Heat, Fargo")
['Matrix, The (1999)', 'Heat', 'Fargo']
>>> parse_choice("The answer is (C).", 10)
(2, 'letter')
>>> parse_choice("I think B", 10)
(1, 'letter')
>>> parse_verdict('{"A": {"helpfulness": 2}} Overall: [[B]]')
'B'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from recai.jsontext import JSONTextError, extract_json

__all__ = [
    "END_TOKEN",
    "parse_list",
    "listed_items",
    "mention_variants",
    "parse_choice",
    "parse_verdict",
    "parse_scores",
    "LETTERS",
    "DEFAULT_THRESHOLD",
]

END_TOKEN = "<end>"
#: Default lowest title-match score that names an item. With the "blend" method on MovieLens-100K
#: titles, 0.6 grounds titles without their year or with the article moved in about 98% of cases,
#: titles with a typo in about 84%, and accepts about 9% of invented titles (mostly sequels).
DEFAULT_THRESHOLD = 0.6
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_FENCE = re.compile(r"^```[\w-]*\s*$", re.MULTILINE)
_MARKER = re.compile(r"^\s*(?:[\(\[]?\d{1,3}\s*[.):\]]|\d{1,3}\s+-\s|[-*•·+]\s|#\d{1,3}\b)\s*")
_MARKUP = re.compile(r"\*\*|__|`")
_QUOTES = ('"', "'", "“", "”", "‘", "’", "«", "»")
_ARTICLE_FRAGMENT = re.compile(
    r"^(the|a|an|les|la|le|l'|il|lo|gli|die|der|das|el|los|las|un|une|det|den|de)"
    r"(\s*\([^()]*\))*$",
    re.IGNORECASE,
)


def _strip_item(text: str) -> str:
    text = _MARKUP.sub("", text)
    text = _MARKER.sub("", text, count=1).strip()
    text = text.strip().rstrip(".,;").strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES and text.count(text[0]) <= 2:
        text = text[1:-1].strip()
    return re.sub(r"\s+", " ", text)


def _split_commas(line: str, score: Callable[[str], float] | None, threshold: float) -> list[str]:
    parts = [p.strip() for p in line.split(",")]
    out: list[str] = []
    i = 0
    while i < len(parts):
        best, span = parts[i], 1
        # a trailing article ("Matrix, The (1999)") belongs to the fragment before it
        while i + span < len(parts) and _ARTICLE_FRAGMENT.match(parts[i + span]):
            best, span = f"{best}, {parts[i + span]}", span + 1
        if score is not None:  # join with the next fragments when that names a known title
            own = score(best)
            for extra in (1, 2, 3):
                if i + span + extra > len(parts):
                    break
                joined = ", ".join([best, *parts[i + span : i + span + extra]])
                s = score(joined)
                if s >= threshold and s > own:
                    best, own, span = joined, s, span + extra
                    break
        out.append(best)
        i += span
    return out


_NUMBER = re.compile(r"^\s*[\(\[]?(\d{1,3})")


def _first_list(marked: list[str]) -> list[str]:
    """The marked lines up to where the numbering starts again (a second list, such as a model
    repeating or summarising its answer, is not part of it)."""
    out: list[str] = []
    last = 0
    for line in marked:
        found = _NUMBER.match(line)
        if found:
            number = int(found.group(1))
            if last and number <= last:
                break
            last = number
        out.append(line)
    return out


def parse_list(
    text: str,
    *,
    score: Callable[[str], float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[str]:
    """The items of a list answer, in order, without numbering, bullets, markup or quotes.

    Shapes understood: items separated by ``<end>``; numbered or bulleted lines (other lines,
    such as a preamble, are then ignored, and so is a second numbered list after the first);
    one item per line; one line separated by ``;`` or
    commas. Comma splitting keeps a trailing article with its title (``Matrix, The``)
    and, given ``score`` (how well a text names a known title, in ``[0, 1]``), joins fragments
    whose join scores at least ``threshold`` and better than the fragment alone. An empty list
    means nothing could be read.
    """
    if not isinstance(text, str):
        return []
    text = _FENCE.sub("", text).strip()
    if not text:
        return []
    if END_TOKEN in text.lower():
        pieces = re.split(re.escape(END_TOKEN), text, flags=re.IGNORECASE)
        return [s for s in (_strip_item(p) for p in pieces) if s]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marked = _first_list([ln for ln in lines if _MARKER.match(ln)])
    if len(marked) >= 2 or (marked and len(lines) == 1):
        items = marked
    elif len(lines) >= 2:
        items = [ln for ln in lines if not ln.endswith(":")]
    else:
        line = lines[0]
        items = line.split(";") if ";" in line else _split_commas(line, score, threshold)
    return [s for s in (_strip_item(i) for i in items) if s]


def listed_items(text: str) -> list[str]:
    """The numbered or bulleted lines of a reply, cleaned (prose lines are not listed items).

    >>> listed_items("How about these?\\n1. Heat (1995)\\n2. **Fargo**\\nEnjoy!")
    ['Heat (1995)', 'Fargo']
    """
    out = []
    for line in str(text).splitlines():
        if _MARKER.match(line):
            item = _strip_item(line)
            if item:
                out.append(item)
    return out


_SEPARATORS = (" | ", " - ", " – ", " — ", ": ", " -- ", " because ", " (a ", " (an ", ". ", " by ")
_QUOTED = re.compile(r"[\"“«]([^\"”»]{2,120})[\"”»]")


def mention_variants(mention: str) -> list[str]:
    """Readings of one list item: the whole text, quoted parts, and the text before a
    separator such as ``" - "`` or ``": "`` (a title followed by a comment).

    >>> mention_variants('"Fargo" - a dark comedy')
    ['"Fargo" - a dark comedy', 'Fargo', '"Fargo"']
    """
    out = [mention]
    out += [m.strip() for m in _QUOTED.findall(mention)]
    for sep in _SEPARATORS:
        head = mention.split(sep, 1)[0].strip()
        if head and head != mention:
            out.append(head)
    return list(dict.fromkeys(v for v in out if v))  # first occurrences, in order


def _letter_patterns(n: int) -> list[re.Pattern[str]]:
    cls = f"[{LETTERS[0]}-{LETTERS[n - 1]}]"
    low = cls.lower()
    return [
        re.compile(rf"^\W*({cls}|{low})\W*$"),  # the whole answer is one letter
        re.compile(rf"\[\[({cls})\]\]"),
        re.compile(
            rf"(?i:answer|option|choice|choose|pick|select|recommend|go with)\w*"
            rf"(?:\s+(?i:is|would be|=))?\s*:?\s*(?i:option\s+)?[\(\[]?"
            rf"({cls}(?![A-Za-z])|{low}(?=[.)\]]|\s*$))"
        ),
        re.compile(rf"(?m)^\s*[\(\[]?({cls})[.):\]]"),
        re.compile(rf"\(({cls})\)"),
    ]


def parse_choice(
    text: str, n_options: int, *, match: Callable[[str], int | None] | None = None
) -> tuple[int | None, str]:
    """The chosen option (0-based) of a multiple-choice answer, and how it was read.

    Letters are read in order of confidence: a lone letter, ``[[B]]``, ``answer is B`` /
    ``Answer: (b)``, ``B.`` or ``(B)`` at the start of a line, ``(B)`` anywhere, then a
    stand-alone capital letter (not ``A``/``I`` used as a word: ``A great pick``). Failing
    that, ``match`` (text -> option index or None, e.g. by title) is tried. Returns
    ``(index, "letter" | "title")`` or ``(None, "none")``.
    """
    if not 1 <= n_options <= len(LETTERS):
        raise ValueError(f"n_options must lie in 1..{len(LETTERS)}")
    if not isinstance(text, str):
        return None, "none"
    clean = _MARKUP.sub("", text).strip()
    for pattern in _letter_patterns(n_options):
        found = pattern.search(clean)
        if found:
            return LETTERS.index(found.group(1).upper()), "letter"
    cls = f"[{LETTERS[0]}-{LETTERS[n_options - 1]}]"
    for found in re.finditer(rf"(?<![\w'])({cls})(?![\w'])", clean):
        after = clean[found.end() : found.end() + 2]
        if found.group(1) in "AI" and re.match(r"\s[a-z]", after):
            continue  # "A good choice", "I think"
        return LETTERS.index(found.group(1)), "letter"
    if match is not None and clean:
        index = match(clean)
        if index is not None:
            return int(index), "title"
    return None, "none"


_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_OVERALL = re.compile(r"overall[ _]?(?:result|verdict)?\W{0,6}\[*\s*([ABC])\b", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """A judge's verdict: ``"A"``, ``"B"`` or ``"C"`` (a tie), from the last ``[[X]]`` or an
    ``"overall result": "A"`` field; ``None`` when there is none."""
    if not isinstance(text, str):
        return None
    found = _VERDICT.findall(text)
    if found:
        return found[-1]
    overall = _OVERALL.findall(text)
    return overall[-1].upper() if overall else None


def parse_scores(
    text: str, aspects: Sequence[str], *, low: float = 1, high: float = 3
) -> dict[str, dict[str, float]] | None:
    """Per-answer aspect scores from a judge: ``{"A": {aspect: score}, "B": {...}}``.

    Read from the reply's JSON object (:func:`recai.jsontext.extract_json`) when it holds
    ``A`` and ``B`` (keys in any case), or else from
    ``aspect: score`` pairs when each aspect appears exactly twice (A's first). Scores outside
    ``[low, high]`` make the result ``None``.

    >>> parse_scores('{"A": {"x": 2, "y": 3}, "B": {"x": 1, "y": 2}}', ["x", "y"])
    {'A': {'x': 2.0, 'y': 3.0}, 'B': {'x': 1.0, 'y': 2.0}}
    """
    if not isinstance(text, str):
        return None
    names = [a.lower() for a in aspects]
    result: dict[str, dict[str, float]] | None = None
    try:
        obj = extract_json(text, kind="object").value
    except JSONTextError:
        obj = {}
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    if all(isinstance(lowered.get(x), dict) for x in ("a", "b")):
        try:
            result = {
                side.upper(): {
                    a: float({str(k).lower(): v for k, v in lowered[side].items()}[a])
                    for a in names
                }
                for side in ("a", "b")
            }
        except (KeyError, TypeError, ValueError):
            result = None
    if result is None:
        pairs = re.findall(
            rf"({'|'.join(map(re.escape, names))})[\"']?\s*[:=]\s*(\d+(?:\.\d+)?)",
            text,
            re.IGNORECASE,
        )
        by_aspect: dict[str, list[float]] = {a: [] for a in names}
        for name, value in pairs:
            by_aspect[name.lower()].append(float(value))
        if names and all(len(v) == 2 for v in by_aspect.values()):
            result = {
                "A": {a: v[0] for a, v in by_aspect.items()},
                "B": {a: v[1] for a, v in by_aspect.items()},
            }
    if result is None:
        return None
    if any(not low <= s <= high for side in result.values() for s in side.values()):
        return None
    return result
