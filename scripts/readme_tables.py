"""Regenerate the error-code and rule tables in README.md from the code.

.venv/bin/python scripts/readme_tables.py          # rewrite README.md
.venv/bin/python scripts/readme_tables.py --check  # exit 1 if out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mlwarden.errors import all_error_classes
from mlwarden.rules import RULES

README = Path(__file__).resolve().parents[1] / "README.md"


def error_table() -> str:
    rows = ["| code | error | exit | HTTP | meaning |", "|---|---|---|---|---|"]
    for cls in all_error_classes():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append(
            f"| `{cls.code}` | {cls.__name__} | {cls.exit_status} | {cls.http_status} | {doc} |"
        )
    return "\n".join(rows)


def rule_table() -> str:
    rows = [
        "| rule | severity | verdict | title | threat | ATLAS | OWASP ML |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        rows.append(
            f"| `{rule.id}` | {rule.severity.label} | {rule.verdict.value} | {rule.title} | "
            f"{rule.threat.info.key} | {', '.join(rule.atlas)} | {', '.join(rule.owasp)} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    for name, table in (("errors", error_table()), ("rules", rule_table())):
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(2), text)
    return text


def main() -> int:
    current = README.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        return 0 if current == wanted else 1
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
