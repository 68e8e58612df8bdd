"""Personal-data screen: precision, recall and rows per second on a generated table.

The table (100,000 rows by default) has structured columns (email, phone, card,
iban, national id, ip) where about half the cells hold real-looking values and
the rest decoys of the same shape that are not personal data (cards failing
Luhn, IBANs failing mod-97, SSNs in never-issued areas, order numbers, dates,
times, versions), and a free-text column mixing both. Truth is per
(row, column, kind); every value is made here with its own check digits.

    .venv/bin/python bench/data_pii.py [--rows N] [--workers N] [--json FILE]

Goal (issue 7): precision and recall >= 0.99 at >= 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_WORDS = ["order", "delivered", "late", "please", "refund", "the", "customer", "called"]


def _luhn_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _card(rng: random.Random, valid: bool) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    check = _luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    digits = body + check
    style = rng.random()
    if style < 0.4 and length == 16:
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    if style < 0.6 and length == 16:
        return "-".join(digits[i : i + 4] for i in range(0, 16, 4))
    return digits


def _iban(rng: random.Random, valid: bool) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    numeric = int(bban + "1314" + "00")  # D=13, E=14, check 00
    check = 98 - numeric % 97
    if not valid:
        check = (check + rng.randint(1, 50)) % 97 + 2
    text = f"DE{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(text[i : i + 4] for i in range(0, len(text), 4))
    return text


def _national(rng: random.Random, valid: bool) -> str:
    if rng.random() < 0.5:
        if valid:
            area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
        else:
            area = rng.choice([0, 666, rng.randint(900, 999)])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    number = rng.randint(10_000_000, 99_999_999)
    letter = _DNI_LETTERS[number % 23]
    if not valid:
        letter = _DNI_LETTERS[(number + rng.randint(1, 22)) % 23]
    return f"{number}{letter}"


def _email(rng: random.Random, valid: bool) -> str:
    user = rng.choice(["ana", "li.wei", "j_smith", "m.rossi", "dev+ml"]) + str(rng.randint(1, 999))
    domain = rng.choice(["example.com", "mail.example.org", "uni.example.edu"])
    return f"{user}@{domain}" if valid else f"{user} at {domain.split('.')[0]}"


def _phones(rng: random.Random, count: int) -> list[str]:
    import phonenumbers

    out: list[str] = []
    regions = ["US", "GB", "DE", "FR", "ES", "IT", "IN", "BR", "JP", "AU"]
    while len(out) < count:
        region = rng.choice(regions)
        example = phonenumbers.example_number(region)
        national = str(example.national_number)
        tail = "".join(rng.choice("0123456789") for _ in range(3))
        number = phonenumbers.parse(f"+{example.country_code}{national[:-3]}{tail}")
        if not phonenumbers.is_valid_number(number):
            continue
        style = (
            phonenumbers.PhoneNumberFormat.NATIONAL
            if region == "US" and rng.random() < 0.5
            else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        out.append(phonenumbers.format_number(number, style))
    return out


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return "2001:db8:" + ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(6))


def _decoy(rng: random.Random) -> str:
    return rng.choice(
        [
            f"ORD-{rng.randint(10**9, 10**10 - 1)}",
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
            f"${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
            f"qty {rng.randint(1, 500)}",
        ]
    )


def make_table(rows: int, seed: int = 7) -> tuple[dict[str, list[str]], set[tuple[int, str, str]]]:
    """Columns of strings, and the truth: (row, column, kind) of every personal value."""
    rng = random.Random(seed)
    phones = _phones(rng, rows)
    columns: dict[str, list[str]] = {
        k: [] for k in ("email", "phone", "card", "iban", "national_id", "ip", "notes")
    }
    truth: set[tuple[int, str, str]] = set()
    for row in range(rows):
        for name, make in (
            ("email", _email),
            ("card", _card),
            ("iban", _iban),
            ("national_id", _national),
        ):
            valid = rng.random() < 0.5
            columns[name].append(make(rng, valid))
            if valid:
                truth.add((row, name, name))
        if rng.random() < 0.5:
            columns["phone"].append(phones[row])
            truth.add((row, "phone", "phone"))
        else:
            columns["phone"].append(_decoy(rng))
        if rng.random() < 0.5:
            columns["ip"].append(_ip(rng))
            truth.add((row, "ip", "ip"))
        else:
            columns["ip"].append(_decoy(rng))
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 8))]
        kind = rng.choice(["email", "phone", "card", "iban", "national_id", "ip", None, None])
        if kind is not None:
            value = {
                "email": lambda: _email(rng, True),
                "phone": lambda: phones[rng.randrange(rows)],
                "card": lambda: _card(rng, True),
                "iban": lambda: _iban(rng, True),
                "national_id": lambda: _national(rng, True),
                "ip": lambda: _ip(rng),
            }[kind]()
            words.insert(rng.randint(0, len(words)), value)
            truth.add((row, "notes", kind))
        words.insert(rng.randint(0, len(words)), _decoy(rng))
        columns["notes"].append(" ".join(words))
    return columns, truth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from mlwarden.data._pii import merge
    from mlwarden.data._scale import map_chunks

    columns, truth = make_table(args.rows)
    chunk = 25_000
    parts = [
        (offset, {k: v[offset : offset + chunk] for k, v in columns.items()})
        for offset in range(0, args.rows, chunk)
    ]
    started = time.perf_counter()
    results = list(map_chunks(_scan, parts, workers=args.workers))
    elapsed = time.perf_counter() - started
    found = {(int(r), h.column, h.kind) for h in merge(results) for r in h.rows}
    tp = len(found & truth)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(truth) if truth else 0.0
    per_kind = {}
    for kind in ("email", "phone", "card", "iban", "national_id", "ip"):
        t = {x for x in truth if x[2] == kind}
        f = {x for x in found if x[2] == kind}
        per_kind[kind] = {
            "precision": round(len(t & f) / len(f), 4) if f else 0.0,
            "recall": round(len(t & f) / len(t), 4) if t else 0.0,
        }
    result = {
        "rows": args.rows,
        "columns": len(columns),
        "workers": args.workers,
        "seconds": round(elapsed, 3),
        "rows_per_second": round(args.rows / elapsed),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "per_kind": per_kind,
        "goal_met": precision >= 0.99 and recall >= 0.99 and args.rows / elapsed >= 20_000,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["goal_met"] else 1


def _scan(part: tuple[int, dict[str, list[str]]]) -> list:
    from mlwarden.data._pii import scan_text

    offset, columns = part
    return scan_text(columns, offset=offset)


if __name__ == "__main__":
    sys.exit(main())
