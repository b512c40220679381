"""Norwegian national identity numbers (fødselsnummer) and D-numbers. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

WEIGHTS_FIRST = (3, 7, 6, 1, 8, 9, 4, 5, 2)
WEIGHTS_SECOND = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


class IdentifierKind(StrEnum):
    # The identifier systems of HL7 Norway's basis profiles.
    fnr = "urn:oid:2.16.578.1.12.4.1.4.1"
    dnr = "urn:oid:2.16.578.1.12.4.1.4.2"


@dataclass(frozen=True)
class NationalIdentity:
    number: str
    kind: IdentifierKind
    birth_date: date


class InvalidIdentityNumber(ValueError):
    pass


def check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The mod-11 control digit for `digits`, or None where it would be 10 (never valid)."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    digit = (11 - remainder) % 11
    return None if digit == 10 else digit


def century(year2: int, individual: int) -> int | None:
    """The century of birth from the individual number, per the Tax Administration's table."""
    if individual <= 499:
        return 1900
    if individual <= 749 and year2 >= 54:
        return 1800
    if year2 <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None


def parse_identity_number(number: str) -> NationalIdentity:
    """Validate a fødselsnummer or D-number; raise InvalidIdentityNumber saying why."""
    if len(number) != 11 or not number.isascii() or not number.isdigit():
        raise InvalidIdentityNumber("must be exactly 11 digits")
    day, month, year2 = int(number[0:2]), int(number[2:4]), int(number[4:6])
    individual = int(number[6:9])
    kind = IdentifierKind.fnr
    if day > 40:
        kind, day = IdentifierKind.dnr, day - 40
    cent = century(year2, individual)
    if cent is None:
        raise InvalidIdentityNumber("individual number does not fit the year of birth")
    try:
        born = date(cent + year2, month, day)
    except ValueError:
        raise InvalidIdentityNumber("does not start with a real date") from None
    first = check_digit(number[:9], WEIGHTS_FIRST)
    if first is None or first != int(number[9]):
        raise InvalidIdentityNumber("first check digit is wrong")
    second = check_digit(number[:10], WEIGHTS_SECOND)
    if second is None or second != int(number[10]):
        raise InvalidIdentityNumber("second check digit is wrong")
    return NationalIdentity(number=number, kind=kind, birth_date=born)
