"""Personal data in text columns, offline: patterns first, then each candidate validated.

Why not presidio-analyzer: it runs its recognizers cell by cell through a
spaCy pipeline, far below the 20,000 rows a second this screen must keep.
Here a column is joined into one string and each pattern runs once over it; a
match is mapped back to its row by binary search over the cells' offsets.
Only the (few) candidates pay for validation: Luhn and issuer prefixes for
cards, mod-97 for IBANs, check digits for national identifiers (python-stdnum),
libphonenumber's per-region rules for phone numbers (phonenumbers), the
`ipaddress` module for IPv6. Where two kinds overlap the stricter one wins
(an IBAN's digits are not also a phone number).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import MissingExtraError

# Kind -> rule id. The order is the priority when two candidates overlap.
KINDS: Mapping[str, str] = {
    "iban": "PII005",
    "card": "PII003",
    "national_id": "PII004",
    "email": "PII001",
    "ip": "PII006",
    "phone": "PII002",
}

_SEP = "\n"

# Pattern sources: each is compiled for str and, for ASCII text (faster), for bytes.
# An e-mail address is found from its "@" (a literal: found at C speed), then its
# local part is read backwards; every other pattern runs once over the column.
_EMAIL_DOMAIN = r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
_EMAIL_LOCAL = r"[A-Za-z0-9._%+-]{1,64}\Z"
_CARD = r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"
_IBAN = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])"
_NATIONAL = (
    r"(?<![\w-])(?:(?P<ssn>\d{3}-\d{2}-\d{4})|(?P<dni>\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z])"
    r"|(?P<cf>[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z])"
    r"|(?P<nir>[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}))(?![\w-])"
)
_IPV4 = (
    r"(?<![\w.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
    r"(?![\w.])"
)
_IPV6 = r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
_PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(?\d{1,5}\)?[ .-]?){1,5}\d{2,5}"
    r"|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4})(?![\w-])"
)


@cache
def _compiled(source: str, ascii_bytes: bool) -> re.Pattern[Any]:
    if ascii_bytes:
        return re.compile(source.encode("ascii"), re.ASCII)
    return re.compile(source)


@dataclass(frozen=True, slots=True, kw_only=True)
class PiiHits:
    """Personal data of one kind in one column: the rows, and one masked example."""

    column: str
    kind: str
    rows: npt.NDArray[np.int64]
    example: str

    @property
    def rule_id(self) -> str:
        return KINDS[self.kind]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _issuer_ok(digits: str) -> bool:
    """A prefix and length some card network issues (Visa, Mastercard, Amex, ...)."""
    n = len(digits)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if (
        digits.startswith(("6011", "65"))
        or 644 <= int(digits[:3]) <= 649
        or (622126 <= six <= 622925)
    ):
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if two == 62:
        return 16 <= n <= 19
    return False


def _card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _issuer_ok(digits) and _luhn_ok(digits)


_SSN_NEVER_ISSUED = frozenset({"078051120", "219099999", "457555462"})


def _ssn(text: str) -> bool:
    """US SSN: areas 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    digits = text.replace("-", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and digits not in _SSN_NEVER_ISSUED
    )


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _dni_or_nie(text: str) -> bool:
    """Spanish DNI (8 digits) or NIE (X/Y/Z and 7 digits) with its check letter."""
    compact = text.replace("-", "")
    head = compact[:-1]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return _DNI_LETTERS[int(head) % 23] == compact[-1]


@cache
def _iban_formats() -> dict[str, re.Pattern[str]]:
    """Country -> the exact shape of its BBAN, from python-stdnum's copy of the IBAN registry."""
    from importlib.resources import files

    kinds = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]", "e": " "}
    formats: dict[str, re.Pattern[str]] = {}
    text = files("stdnum").joinpath("iban.dat").read_text(encoding="utf-8")
    for line in text.splitlines():
        match = re.match(r'([A-Z]{2}) .*bban="([^"]+)"', line)
        if match:
            parts = re.findall(r"(\d+)!([nace])", match.group(2))
            formats[match.group(1)] = re.compile(
                "".join(f"{kinds[kind]}{{{count}}}" for count, kind in parts)
            )
    return formats


# A=10 ... Z=35: the letters of an IBAN as the digits its checksum is computed over.
_IBAN_DIGITS = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})


def _iban(text: str) -> bool:
    """IBAN: the country's registered BBAN shape, and mod-97 of the rearranged number is 1."""
    compact = text.replace(" ", "")
    shape = _iban_formats().get(compact[:2])
    if shape is None or not shape.fullmatch(compact[4:]):
        return False
    rearranged = compact[4:] + compact[:4]
    return int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1


@cache
def _phone_patterns(country_code: int) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The national-number pattern (and trunk prefix) of each region sharing a country code."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

    out = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = (
            PhoneMetadata.metadata_for_nongeo_region(country_code)
            if region == "001"
            else PhoneMetadata.metadata_for_region(region)
        )
        desc = metadata.general_desc if metadata is not None else None
        if desc is not None and desc.national_number_pattern:
            prefix = metadata.national_prefix or "" if metadata is not None else ""
            out.append((re.compile(desc.national_number_pattern), prefix))
    return tuple(out)


_NOT_DIGIT = re.compile(r"\D")


def _phone_checker(region: str) -> Callable[[str], bool]:
    """libphonenumber's per-region number patterns, applied without its slow full parse.

    The number must match its region's national-number pattern (the union of the
    fixed-line, mobile, toll-free... ranges): the check `is_valid_number` makes,
    minus the per-type split that does not change the answer for almost all numbers.
    """
    try:
        from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, country_code_for_region
    except ImportError:
        raise MissingExtraError("phonenumbers", "data") from None
    home = country_code_for_region(region.upper())

    def valid(text: str) -> bool:
        digits = _NOT_DIGIT.sub("", text)
        if text.startswith("+"):
            for width in (1, 2, 3):
                code = int(digits[:width])
                if code in COUNTRY_CODE_TO_REGION_CODE:
                    break
            else:
                return False
            national = digits[width:]
        else:
            code, national = home, digits
        for pattern, prefix in _phone_patterns(code):
            if pattern.fullmatch(national):
                return True
            if (
                prefix
                and national.startswith(prefix)
                and pattern.fullmatch(national[len(prefix) :])
            ):
                return True
        return False

    return valid


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _always(_: str) -> bool:
    return True


Check = tuple[str, Callable[[str, str | None], bool], str]


def _national_checker() -> Callable[[str, str | None], bool]:
    try:
        from stdnum.fr import nir
        from stdnum.it import codicefiscale
    except ImportError:
        raise MissingExtraError("python-stdnum", "data") from None
    by_group: dict[str | None, Callable[[str], bool]] = {
        "ssn": _ssn,
        "dni": _dni_or_nie,
        "cf": codicefiscale.is_valid,
        "nir": nir.is_valid,
    }
    return lambda text, group: bool(by_group[group](text))


def _plain(check: Callable[[str], bool]) -> Callable[[str, str | None], bool]:
    return lambda text, _group: check(text)


def _validators(region: str) -> dict[str, list[Check]]:
    """Kind -> (pattern source, validator(text, group), a character every match holds or "")."""
    return {
        "iban": [(_IBAN, _plain(_iban), "")],
        "card": [(_CARD, _plain(_card), "")],
        "national_id": [(_NATIONAL, _national_checker(), "")],
        "email": [(_EMAIL_DOMAIN, _plain(_always), "@")],
        "ip": [(_IPV4, _plain(_always), "."), (_IPV6, _plain(_ipv6), ":")],
        "phone": [(_PHONE, _plain(_phone_checker(region)), "")],
    }


def _matches(
    source: str, joined: Any, ascii_bytes: bool
) -> Iterator[tuple[int, int, str, str | None]]:
    """(begin, end, text, group) of each match of the pattern; e-mails grown from their "@"."""
    pattern = _compiled(source, ascii_bytes)
    local = _compiled(_EMAIL_LOCAL, ascii_bytes) if source is _EMAIL_DOMAIN else None
    for match in pattern.finditer(joined):
        begin, end = match.span()
        if local is not None:
            head = local.search(joined, max(0, begin - 64), begin)
            # A local part longer than 64 characters is no address (RFC 5321).
            if head is None or (
                head.start() == begin - 64
                and begin > 64
                and local.match(joined, begin - 65, begin - 64) is not None
            ):
                continue
            begin = head.start()
        text = joined[begin:end]
        yield begin, end, text.decode("ascii") if ascii_bytes else text, match.lastgroup


def mask(text: str) -> str:
    """Enough to recognise the kind, not enough to leak it: first and last two characters."""
    if len(text) <= 6:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def scan_column(
    name: str,
    values: Sequence[str | None],
    *,
    offset: int = 0,
    region: str = "US",
) -> list[PiiHits]:
    """Every kind of personal data in one text column; row ids are `offset` + index.

    `region` is libphonenumber's region for numbers written without +country.
    """
    if not values:
        return []
    cells = ["" if v is None else v.replace(_SEP, " ") for v in values]
    lengths = np.fromiter((len(c) + 1 for c in cells), dtype=np.int64, count=len(cells))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    text = _SEP.join(cells)
    # ASCII text is scanned as bytes (offsets are the same, the patterns run faster).
    ascii_bytes = text.isascii()
    joined: Any = text.encode("ascii") if ascii_bytes else text
    claimed = bytearray(len(text) + 1)
    found: list[PiiHits] = []
    for kind, checks in _validators(region).items():
        positions: list[int] = []
        example = ""
        for source, valid, needed in checks:
            if needed and needed not in text:
                continue
            for begin, end, value, group in _matches(source, joined, ascii_bytes):
                if claimed.find(1, begin, end) != -1 or not valid(value, group):
                    continue
                claimed[begin:end] = b"\x01" * (end - begin)
                positions.append(begin)
                example = example or value
        if positions:
            rows = np.searchsorted(starts, np.array(positions, dtype=np.int64), side="right") - 1
            found.append(
                PiiHits(
                    column=name,
                    kind=kind,
                    rows=np.unique(rows).astype(np.int64) + offset,
                    example=mask(example),
                )
            )
    return found


def scan_text(
    columns: Mapping[str, Sequence[str | None]], *, offset: int = 0, region: str = "US"
) -> list[PiiHits]:
    """Every text column of a table (or of one chunk of it, starting at row `offset`)."""
    hits: list[PiiHits] = []
    for name, values in columns.items():
        hits.extend(scan_column(name, values, offset=offset, region=region))
    return hits


def merge(parts: Sequence[Sequence[PiiHits]]) -> list[PiiHits]:
    """Join the hits of many chunks: one entry per (column, kind)."""
    rows: dict[tuple[str, str], list[npt.NDArray[np.int64]]] = {}
    examples: dict[tuple[str, str], str] = {}
    for part in parts:
        for hit in part:
            key = (hit.column, hit.kind)
            rows.setdefault(key, []).append(hit.rows)
            examples.setdefault(key, hit.example)
    order = list(KINDS)
    return [
        PiiHits(column=c, kind=k, rows=np.unique(np.concatenate(r)), example=examples[(c, k)])
        for (c, k), r in sorted(rows.items(), key=lambda i: (i[0][0], order.index(i[0][1])))
    ]
