"""Seeded generators for the four task families.

Every generator takes a ``random.Random`` and returns (prompt, reference, answer).
References are worked step by step and end in ``The answer is X.`` so most
tokens are template text (easy for a small model) while the digits, names and
letters that carry the result are the critical ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Gen = Callable[[random.Random], tuple[str, str, str]]

NAMES = [
    "Ann", "Ben", "Cal", "Dee", "Eve", "Finn", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lea",
    "Max", "Nia", "Otto", "Pia", "Quin", "Rae", "Sam", "Tess", "Uma", "Vic", "Wes", "Zoe",
]  # fmt: skip
# comparative, superlative (top of the order), superlative (bottom)
ATTRS = [
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
    ("heavier", "heaviest", "lightest"),
]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "shells", "cards", "stamps"]
BOXES = ["bags", "boxes", "packs", "jars"]


def _digits(n: int) -> list[int]:
    return [int(c) for c in str(n)]


def gen_arith(rng: random.Random) -> tuple[str, str, str]:
    """Multi-digit addition or multiplication by one digit, carries written out."""
    if rng.random() < 0.5:
        a = rng.randint(10, 9999)
        b = rng.randint(10, 9999)
        w = max(len(str(a)), len(str(b)))
        pa, pb = str(a).zfill(w), str(b).zfill(w)
        lines = [f"Line up the digits: {pa} and {pb}. Add from right to left."]
        carry, out = 0, []
        for da, db in zip(reversed(pa), reversed(pb), strict=True):
            s = int(da) + int(db) + carry
            lines.append(f"{da} + {db} + {carry} = {s}, write {s % 10}, carry {s // 10}.")
            out.append(s % 10)
            carry = s // 10
        if carry:
            lines.append(f"Write the final carry {carry}.")
        prompt = f"What is {a} + {b}?"
        ans = a + b
    else:
        a = rng.randint(10, 999)
        m = rng.randint(2, 9)
        lines = [f"Multiply each digit of {a} by {m}, from right to left."]
        carry = 0
        for d in reversed(str(a)):
            p = int(d) * m
            s = p + carry
            lines.append(
                f"{d} * {m} = {p}, plus carry {carry} is {s}, write {s % 10}, carry {s // 10}."
            )
            carry = s // 10
        if carry:
            lines.append(f"Write the final carry {carry}.")
        prompt = f"What is {a} * {m}?"
        ans = a * m
    lines.append(f"The answer is {ans}.")
    return prompt, "\n".join(lines), str(ans)


def gen_compare(rng: random.Random) -> tuple[str, str, str]:
    """Transitive comparison chain, answered with a multiple-choice letter."""
    n = rng.randint(3, 5)
    people = rng.sample(NAMES, n)  # people[0] is at the top of the order
    comp, top, bottom = rng.choice(ATTRS)
    facts = [f"{people[i]} is {comp} than {people[i + 1]}." for i in range(n - 1)]
    rng.shuffle(facts)
    ask_top = rng.random() < 0.5
    target = people[0] if ask_top else people[-1]
    options = people[:]
    rng.shuffle(options)
    letters = "ABCDE"[:n]
    letter = letters[options.index(target)]
    opt_text = "\n".join(f"{lt}) {p}" for lt, p in zip(letters, options, strict=True))
    sup = top if ask_top else bottom
    prompt = f"{' '.join(facts)}\nWho is the {sup}?\n{opt_text}\nAnswer with the letter."
    chain = [f"{people[i]} is {comp} than {people[i + 1]}." for i in range(n - 1)]
    ref = [
        f"Nobody is {comp} than {people[0]}.",
        *chain,
        f"So the order from {top} to {bottom} is {', '.join(people)}.",
        f"The {sup} is {target}.",
        f"{target} is option {letter}.",
        f"The answer is {letter}.",
    ]
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
                steps.append(f"{x} does not match.")
        prompt = f"How many times does {t} appear in the list {lst}?"
        ref = [f"Go through the list and count each {t}.", *steps, f"The answer is {c}."]
        return prompt, "\n".join(ref), str(c)
    xs = rng.sample(range(1, 100), rng.randint(3, 6))
    lst = ", ".join(map(str, xs))
    if op == "sort":
        out = ", ".join(map(str, sorted(xs)))
        prompt = f"Sort the list {lst} from smallest to largest."
        picks = " ".join(f"Next smallest: {x}." for x in sorted(xs))
        ref = ["Pick the smallest remaining number each time.", picks, f"The answer is {out}."]
    elif op == "max":
        best = xs[0]
        steps = [f"Start with {best}."]
        for x in xs[1:]:
            if x > best:
                best = x
                steps.append(f"{x} is larger, keep {x}.")
            else:
                steps.append(f"{x} is not larger, keep {best}.")
        prompt = f"What is the largest number in the list {lst}?"
        out = str(best)
        ref = ["Go through the list and keep the largest so far.", *steps, f"The answer is {out}."]
    else:
        out = ", ".join(map(str, reversed(xs)))
        prompt = f"Reverse the list {lst}."
        ref = ["Read the list from the last number to the first.", f"The answer is {out}."]
    return prompt, "\n".join(ref), out


def gen_word(rng: random.Random) -> tuple[str, str, str]:
    """Multi-step integer word problems with worked arithmetic (GSM8K-like)."""
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
            f"{a} + {b * c} = {s}.",
            f"After giving away {d}: {s} - {d} = {s - d}.",
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
            f"After the morning: {a} - {d} = {a - d}.",
            f"After the afternoon: {a - d} - {e} = {a - d - e}.",
        ]
        ans = a - d - e
    elif kind == 2:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 40)
        prompt = (
            f"{name} reads {a} pages each day for {b} days, then reads {c} more pages. "
            f"How many pages does {name} read in total?"
        )
        ref = [
            f"{a} pages for {b} days is {a} * {b} = {a * b} pages.",
            f"{a * b} + {c} = {a * b + c}.",
        ]
        ans = a * b + c
    else:
        a, b = rng.randint(2, 50), rng.randint(1, 30)
        prompt = (
            f"{name} has {a} {item} and {other} has {b} more {item} than {name}. "
            f"How many {item} do they have together?"
        )
        ref = [
            f"{other} has {a} + {b} = {a + b} {item}.",
            f"Together: {a} + {a + b} = {2 * a + b}.",
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
