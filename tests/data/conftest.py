"""Small datasets and keys for the data-screen tests, all made at test time."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The checks whose answers on the small fixtures below are known exactly; the
# model-based checks have their own known-answer tests.
ROW_LOCAL = ("pii", "duplicates", "leakage")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """An EC P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    """40 rows: numeric features, a label, a free-text column; known PII and duplicates.

    Row 5 holds an e-mail, row 7 a valid Visa number, row 9 an IBAN, row 11 a US SSN,
    row 13 an IPv4 address, row 15 a UK phone number; rows 30 and 31 repeat rows 2 and 3.
    """
    notes = {
        5: "write to ana.lopez@example.com today",
        7: "paid with 4111 1111 1111 1111",
        9: "refund to GB82 WEST 1234 5698 7654 32",
        11: "ssn 123-45-6789 on file",
        13: "login from 192.168.10.20",
        15: "call +44 20 7946 0958",
        17: "card 4111 1111 1111 1112 is a typo",  # fails Luhn: not a card
        19: "order ORD-1234567890 shipped 2024-05-17",
    }
    rows: list[list[object]] = []
    for i in range(30):
        rows.append([i, (i * 7) % 11, f"{i * 0.5:.1f}", notes.get(i, f"note {i}"), i % 2])
    rows.append(list(rows[2]))
    rows.append(list(rows[3]))
    for i in range(32, 40):
        rows.append([i, (i * 7) % 11, f"{i * 0.5:.1f}", f"note {i}", i % 2])
    return write_csv(tmp_path / "people.csv", ["id", "a", "b", "notes", "label"], rows)
