"""Seeded generators for the four task families.

Every generator takes a ``random.Random`` and returns (prompt, reference, answer).
References are worked step by step and end in ``The answer is X.`` so most
tokens are template text (easy for a small model) while the digits, names and
letters that carry the result are the critical ones. Wording varies at random
between equivalent phrasings (``_say``), as real answers do: those positions
are uncertain for both models yet harmless, the case where a router that
knows which uncertainty matters beats one that only reads confidence.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Gen = Callable[[random.Random], tuple[str, str, str]]

NAMES = [
    "Ann", "Ben", "Cal", "Dee", "Eve", "Finn", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lea",
    "Max", "Nia", "Otto", "Pia", "Quin", "Rae", "Sam", "Tess", "Uma", "Vic", "Wes", "Zoe",
]  # fmt: skip
# compare-family options: option X is always a name starting with X
CHOICE_NAMES = {
    "A": ["Ann", "Ada", "Abe", "Amy"],
    "B": ["Ben", "Bea", "Bob", "Bess"],
    "C": ["Cal", "Cleo", "Cora", "Cyd"],
    "D": ["Dee", "Dan", "Dora", "Dev"],
    "E": ["Eve", "Eli", "Emma", "Ezra"],
}
# comparative, superlative (top of the order), superlative (bottom)
ATTRS = [
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
    ("heavier", "heaviest", "lightest"),
]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "shells", "cards", "stamps"]
BOXES = ["bags", "boxes", "packs", "jars"]


def _say(rng: random.Random, *phrasings: str) -> str:
    """One of several equivalent phrasings (the choice never changes the answer)."""
    return rng.choice(phrasings)


def _add_lines(rng: random.Random, a: int, b: int) -> list[str]:
    """Column addition, right to left, one line per column (the arith family's format)."""
    w = max(len(str(a)), len(str(b)))
    pa, pb = str(a).zfill(w), str(b).zfill(w)
    lines, carry = [], 0
    for da, db in zip(reversed(pa), reversed(pb), strict=True):
        s = int(da) + int(db) + carry
        w = _say(rng, "write", "put down")
        lines.append(f"{da} + {db} + {carry} = {s}, {w} {s % 10}, carry {s // 10}.")
        carry = s // 10
    if carry:
        lines.append(f"Write the final carry {carry}.")
    return lines


def _sub_lines(rng: random.Random, a: int, b: int) -> list[str]:
    """Column subtraction a - b (a >= b), right to left; a borrowed column is written 1x."""
    w = len(str(a))
    pa, pb = str(a), str(b).zfill(w)
    lines, borrow = [], 0
    for da, db in zip(reversed(pa), reversed(pb), strict=True):
        top = int(da) - borrow
        nxt = 1 if top < int(db) else 0
        shown = f"1{da}" if nxt else da
        r = top + 10 * nxt - int(db)
        w = _say(rng, "write", "put down")
        lines.append(f"{shown} - {borrow} - {db} = {r}, {w} {r}, borrow {nxt}.")
        borrow = nxt
    return lines


def _op(rng: random.Random, a: int, sign: str, b: int) -> list[str]:
    """Worked ``a sign b``: column steps, then the result line ``a sign b = r.``"""
    r = a + b if sign == "+" else a - b
    steps = _add_lines(rng, a, b) if sign == "+" else _sub_lines(rng, a, b)
    first = _say(rng, "Work out", "Compute", "Now")
    so = _say(rng, "So", "Thus", "That gives")
    return [f"{first} {a} {sign} {b}.", *steps, f"{so} {a} {sign} {b} = {r}."]


def gen_arith(rng: random.Random) -> tuple[str, str, str]:
    """Multi-digit addition or multiplication by one digit, carries written out."""
    if rng.random() < 0.5:
        a = rng.randint(10, 9999)
        b = rng.randint(10, 9999)
        w = max(len(str(a)), len(str(b)))
        pa, pb = str(a).zfill(w), str(b).zfill(w)
        lines = [
            f"{_say(rng, 'Line up', 'Align')} the digits: {pa} and {pb}. Add from right to left."
        ]
        carry, out = 0, []
        for da, db in zip(reversed(pa), reversed(pb), strict=True):
            s = int(da) + int(db) + carry
            w = _say(rng, "write", "put down")
            lines.append(f"{da} + {db} + {carry} = {s}, {w} {s % 10}, carry {s // 10}.")
            out.append(s % 10)
            carry = s // 10
        if carry:
            lines.append(f"Write the final carry {carry}.")
        prompt = f"What is {a} + {b}?"
        ans = a + b
    else:
        a = rng.randint(10, 999)
        m = rng.randint(2, 9)
        by = _say(rng, f"Multiply each digit of {a} by {m}", f"Take each digit of {a} times {m}")
        lines = [f"{by}, from right to left."]
        carry = 0
        for d in reversed(str(a)):
            p = int(d) * m
            s = p + carry
            w = _say(rng, "write", "put down")
            lines.append(
                f"{d} * {m} = {p}, plus carry {carry} is {s}, {w} {s % 10}, carry {s // 10}."
            )
            carry = s // 10
        if carry:
            lines.append(f"Write the final carry {carry}.")
        prompt = f"What is {a} * {m}?"
        ans = a * m
    lines.append(f"The answer is {ans}.")
    return prompt, "\n".join(lines), str(ans)


def gen_compare(rng: random.Random) -> tuple[str, str, str]:
    """Transitive comparison chain, answered with a multiple-choice letter.

    Options are listed A, B, C... and each option's name starts with its own
    letter (``C) Cleo``), so naming the answer decides the letter. The reference
    eliminates candidates fact by fact (each fact rules out one person for the
    question asked) and rewrites who is left, so every step is a local copy.
    """
    n = rng.randint(3, 5)
    letters = "ABCDE"[:n]
    options = [rng.choice(CHOICE_NAMES[c]) for c in letters]
    people = rng.sample(options, n)  # people[0] is at the top of the order
    comp, top, bottom = rng.choice(ATTRS)
    pairs = [(people[i], people[i + 1]) for i in range(n - 1)]
    rng.shuffle(pairs)
    ask_top = rng.random() < 0.5
    target = people[0] if ask_top else people[-1]
    letter = target[0]
    opt_text = "\n".join(f"{p[0]}) {p}" for p in options)
    sup = top if ask_top else bottom
    facts = " ".join(f"{hi} is {comp} than {lo}." for hi, lo in pairs)
    prompt = f"{facts}\nWho is the {sup}?\n{opt_text}\nAnswer with the letter."
    left = options[:]
    ref = [f"Look for the {sup}. Candidates: {', '.join(left)}."]
    for hi, lo in pairs:
        out = lo if ask_top else hi
        left.remove(out)
        gone = _say(rng, f"so {out} is out", f"which rules out {out}")
        ref.append(
            f"{hi} is {comp} than {lo}, {gone}. {_say(rng, 'Left', 'Still in')}: {', '.join(left)}."
        )
    ref += [f"The {sup} is {target}.", f"The answer is {letter}."]
    return prompt, "\n".join(ref), letter


def gen_list(rng: random.Random) -> tuple[str, str, str]:
    """Sort, max, count or reverse a short list of numbers, step by step."""
    op = rng.choice(["sort", "max", "count", "reverse"])
    if op == "count":
        xs = [rng.randint(1, 5) for _ in range(rng.randint(5, 8))]
        t = rng.choice(xs) if rng.random() < 0.85 else rng.randint(1, 5)
        lst = ", ".join(map(str, xs))
        steps, c = [], 0
        for x in xs:
            if x == t:
                c += 1
                steps.append(f"{x} matches, count {c}.")
            else:
                steps.append(f"{x} {_say(rng, 'does not match', 'is not a match')}.")
        prompt = f"How many times does {t} appear in the list {lst}?"
        ref = [f"Go through the list and count each {t}.", *steps, f"The answer is {c}."]
        return prompt, "\n".join(ref), str(c)
    # sort takes distinct one-digit numbers: each rewrite of the remaining list then
    # copies single tokens (the demo LLM did not learn to copy a two-digit number's
    # units digit from the right number: 0.24 on sort with 1-99, pair v2)
    xs = rng.sample(range(1, 10) if op == "sort" else range(1, 100), rng.randint(3, 6))
    lst = ", ".join(map(str, xs))
    if op == "sort":
        out = ", ".join(map(str, sorted(xs)))
        prompt = f"Sort the list {lst} from smallest to largest."
        ref, rest = ["Pick the smallest remaining number each time."], xs[:]
        while rest:  # rewriting what is left keeps each pick a scan of one short line
            x = min(rest)
            left, low = _say(rng, "Remaining", "Still to place"), _say(rng, "Smallest", "Lowest")
            ref.append(f"{left}: {', '.join(map(str, rest))}. {low}: {x}.")
            rest.remove(x)
        ref.append(f"The answer is {out}.")
    elif op == "max":
        best = xs[0]
        steps = [f"Start with {best}."]
        for x in xs[1:]:
            if x > best:
                best = x
                steps.append(f"{x} is {_say(rng, 'larger', 'bigger')}, keep {x}.")
            else:
                steps.append(f"{x} is {_say(rng, 'not larger', 'smaller')}, keep {best}.")
        prompt = f"What is the largest number in the list {lst}?"
        out = str(best)
        ref = ["Go through the list and keep the largest so far.", *steps, f"The answer is {out}."]
    else:
        out = ", ".join(map(str, reversed(xs)))
        prompt = f"Reverse the list {lst}."
        ref = ["Read the list from the last number to the first.", f"The answer is {out}."]
    return prompt, "\n".join(ref), out


def gen_word(rng: random.Random) -> tuple[str, str, str]:
    """Multi-step integer word problems (GSM8K-like).

    Products are single-digit times tables written in one step; every
    multi-digit sum or difference is worked column by column (the way a
    calculator annotation would be) before its result is used.
    """
    name, other = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    kind = rng.randint(0, 3)
    if kind == 0:
        a, b, c = rng.randint(2, 30), rng.randint(2, 9), rng.randint(2, 9)
        s = a + b * c
        d = rng.randint(1, s - 1)
        box = rng.choice(BOXES)
        prompt = (
            f"{name} has {a} {item}. {name} buys {b} {box} with {c} {item} in each. "
            f"Then {name} gives {d} {item} to a friend. How many {item} does {name} have now?"
        )
        ref = [
            f"{name} starts with {a} {item}.",
            f"{b} {box} with {c} {item} each is {b} * {c} = {b * c} {item}.",
            *_op(rng, a, "+", b * c),
            _say(rng, f"After giving away {d}:", f"Then {name} gives away {d}:"),
            *_op(rng, s, "-", d),
        ]
        ans = s - d
    elif kind == 1:
        a = rng.randint(20, 99)
        d = rng.randint(1, a - 1)
        e = rng.randint(0, a - d)
        prompt = (
            f"A shop has {a} {item}. It sells {d} {item} in the morning and {e} {item} "
            f"in the afternoon. How many {item} are left?"
        )
        ref = [
            _say(rng, "After the morning:", f"In the morning {d} are sold:"),
            *_op(rng, a, "-", d),
            _say(rng, "After the afternoon:", f"In the afternoon {e} are sold:"),
            *_op(rng, a - d, "-", e),
        ]
        ans = a - d - e
    elif kind == 2:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 40)
        prompt = (
            f"{name} reads {a} pages each day for {b} days, then reads {c} more pages. "
            f"How many pages does {name} read in total?"
        )
        ref = [f"{a} pages for {b} days is {a} * {b} = {a * b} pages.", *_op(rng, a * b, "+", c)]
        ans = a * b + c
    else:
        a, b = rng.randint(2, 50), rng.randint(1, 30)
        prompt = (
            f"{name} has {a} {item} and {other} has {b} more {item} than {name}. "
            f"How many {item} do they have together?"
        )
        ref = [
            f"{other} has {b} more than {a}.",
            *_op(rng, a, "+", b),
            _say(rng, "Together:", "Both together:"),
            *_op(rng, a, "+", a + b),
        ]
        ans = 2 * a + b
    ref.append(f"The answer is {ans}.")
    return prompt, "\n".join(ref), str(ans)


FAMILIES: dict[str, Gen] = {
    "arith": gen_arith,
    "compare": gen_compare,
    "list": gen_list,
    "word": gen_word,
}
