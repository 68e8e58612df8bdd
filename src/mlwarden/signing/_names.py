"""Which resource names a manifest may carry.

A signed name becomes a path that mlwarden opens under the model root, so a name
is refused unless it is plainly a relative POSIX path inside the root: no `..`,
no absolute paths, no backslashes, no empty or `.` components, no control or
invisible characters, NFC-normal and unchanged by NFKC (so `ｍodel.bin` or a
ligature cannot stand in for `model.bin`), and no word (a run of letters) that mixes Latin
letters with Cyrillic or Greek ones (the usual homoglyph trick: `mоdel.bin` with
a Cyrillic `о`). Names are compared for duplicates after NFKC and case folding,
since two such names would be one file on a case-insensitive file system.
"""

from __future__ import annotations

import re
import unicodedata

# The one name a single-file model carries (what model_signing writes for a file).
SINGLE_FILE_NAME = "."
# Runs of letters: "Ωμέγα.bin" is two words, each in one script; "mоdel" (Cyrillic о) is one.
_WORDS = re.compile(r"[^\W\d_]+")


# Anything an ASCII name may not contain: control characters, a backslash, a leading or
# trailing slash, an empty, "." or ".." component, a drive letter. A name that does not match
# is fine; one that matches goes through the checks below to learn the precise reason.
_ASCII_SUSPECT = re.compile(r"[\x00-\x1f\x7f\\]|^/|/$|//|(?:^|/)\.\.?(?:/|$)|^[^/]:|^$")


_CONTROL_OR_BACKSLASH = re.compile(r"[\x00-\x1f\x7f\\]")


def all_plain(names: list[str]) -> bool:
    """True when every name is plain ASCII that `unsafe_reason` accepts, decided with a few
    C-speed passes over all the names joined by "/" instead of a Python call per name. False
    only means "look at each name" (any colon, for one, sends them all to the precise check).
    """
    if not names:
        return True
    joined = "/".join(names)
    # Joined by "/", an empty name or an empty component shows as "//", a leading or trailing
    # slash at either end or as "//", a "." or ".." component as "/./" or "/../".
    framed = f"/{joined}/"
    return (
        joined.isascii()
        and max(map(len, names)) <= 4096
        and _CONTROL_OR_BACKSLASH.search(joined) is None
        and ":" not in joined
        and "//" not in framed
        and "/./" not in framed
        and "/../" not in framed
    )


def unsafe_reason(name: str) -> str | None:
    """Why `name` may not be a resource name, or None when it is fine."""
    if name.isascii() and _ASCII_SUSPECT.search(name) is None and len(name) <= 4096:
        return None  # the common case, one regular expression for tens of thousands of names
    if name == SINGLE_FILE_NAME:
        return None
    if not name:
        return "the name is empty"
    if "\\" in name:
        return "the name contains a backslash"
    if name.startswith("/"):
        return "the name is an absolute path"
    if len(name) > 4096:
        return "the name is longer than 4096 characters"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "the name has an empty, '.' or '..' component"
    if not name.isascii():
        reason = _unicode_reason(name)
        if reason is not None:
            return reason
    elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "the name contains a control character"
    if len(parts[0]) == 2 and parts[0][1] == ":":
        return "the name starts with a drive letter"
    return None


def _unicode_reason(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    for ch in name:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"the name contains the invisible or control character U+{ord(ch):04X}"
    if unicodedata.normalize("NFC", name) != name:
        return "the name is not in Unicode NFC form"
    if unicodedata.normalize("NFKC", name) != name:
        return "the name changes under NFKC normalisation (a look-alike of another name)"
    for word in _WORDS.findall(name):
        scripts = {s for s in (_script(ch) for ch in word) if s is not None}
        if "LATIN" in scripts and len(scripts) > 1:
            others = "/".join(sorted(scripts - {"LATIN"}))
            return f"the word {word!r} mixes Latin with {others} letters (a homoglyph)"
    return None


def _script(ch: str) -> str | None:
    if ch.isascii():
        return "LATIN"
    try:
        word = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return None
    return word if word in ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE") else None


def collision_key(name: str) -> str:
    """Two names with one key would be one file somewhere: treat them as duplicates."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFKC", name).casefold()
