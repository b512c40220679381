"""rpm.patients.identity: fødselsnummer and D-numbers (api.md, "Patient identifier")."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rpm.patients.identity import (
    WEIGHTS_FIRST,
    WEIGHTS_SECOND,
    IdentifierKind,
    InvalidIdentityNumber,
    NationalIdentity,
    century,
    check_digit,
    parse_identity_number,
)
from tests.fixtures.identity import make_identity_number

EXAMPLE = "13097248022"  # born 1972-09-13, individual number 480
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"


def spec_digit(digits: str, weights: list[int]) -> int:
    """A mod-11 control digit straight from the spec (independent of rpm.patients.identity):
    0-9, or 10 where no valid digit exists."""
    return (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11


SPEC_FIRST = [3, 7, 6, 1, 8, 9, 4, 5, 2]
SPEC_SECOND = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def spec_check_digits(head: str) -> str | None:
    """The two check digits of a 9-digit head; None where one of them would be 10."""
    first = spec_digit(head, SPEC_FIRST)
    if first == 10:
        return None
    second = spec_digit(f"{head}{first}", SPEC_SECOND)
    if second == 10:
        return None
    return f"{first}{second}"


def complete(head: str) -> str:
    """A 9-digit head with its correct check digits; fails the test if there are none."""
    checks = spec_check_digits(head)
    assert checks is not None, f"{head} has no check digits; pick another individual number"
    return head + checks


def head_with_check_digits(ddmmyy: str, start: int = 0) -> str:
    """ddmmyy plus the first individual number from `start` that has check digits."""
    for individual in range(start, 1000):
        head = f"{ddmmyy}{individual:03d}"
        if spec_check_digits(head) is not None:
            return head
    raise AssertionError(f"no individual number from {start} has check digits for {ddmmyy}")


# --- the example and the check digits ----------------------------------------------------------


def test_the_weights_are_the_specs():
    assert list(WEIGHTS_FIRST) == SPEC_FIRST
    assert list(WEIGHTS_SECOND) == SPEC_SECOND


def test_the_example_number_is_a_valid_fnr():
    identity = parse_identity_number(EXAMPLE)
    assert identity == NationalIdentity(
        number=EXAMPLE, kind=IdentifierKind.fnr, birth_date=date(1972, 9, 13)
    )
    assert identity.kind == FNR_SYSTEM


def test_check_digits_of_the_example():
    assert check_digit(EXAMPLE[:9], WEIGHTS_FIRST) == 2
    assert check_digit(EXAMPLE[:10], WEIGHTS_SECOND) == 2


def test_check_digit_is_none_where_it_would_be_ten():
    head = next(f"010190{i:03d}" for i in range(1000)
                if spec_digit(f"010190{i:03d}", SPEC_FIRST) == 10)
    assert check_digit(head, WEIGHTS_FIRST) is None


def test_check_digit_is_zero_where_the_sum_is_a_multiple_of_eleven():
    assert check_digit("000000000", WEIGHTS_FIRST) == 0


def test_check_digit_needs_as_many_digits_as_weights():
    with pytest.raises(ValueError):
        check_digit("12345678", WEIGHTS_FIRST)


def test_the_identifier_systems_are_hl7_norways():
    assert IdentifierKind.fnr == FNR_SYSTEM
    assert IdentifierKind.dnr == DNR_SYSTEM


@pytest.mark.parametrize(
    ("number", "born", "kind"),
    [
        (EXAMPLE, date(1972, 9, 13), IdentifierKind.fnr),
        (complete("530972480"), date(1972, 9, 13), IdentifierKind.dnr),
        (complete(head_with_check_digits("410100")), date(1900, 1, 1), IdentifierKind.dnr),
        (complete(head_with_check_digits("711299")), date(1999, 12, 31), IdentifierKind.dnr),
        (complete(head_with_check_digits("690272")), date(1972, 2, 29), IdentifierKind.dnr),
        (complete(head_with_check_digits("290272")), date(1972, 2, 29), IdentifierKind.fnr),
        (complete(head_with_check_digits("290200", 500)), date(2000, 2, 29), IdentifierKind.fnr),
        (complete(head_with_check_digits("010154", 500)), date(1854, 1, 1), IdentifierKind.fnr),
        (complete(head_with_check_digits("311239", 500)), date(2039, 12, 31), IdentifierKind.fnr),
        (complete(head_with_check_digits("010140", 900)), date(1940, 1, 1), IdentifierKind.fnr),
    ],
)
def test_valid_numbers(number, born, kind):
    identity = parse_identity_number(number)
    assert identity.birth_date == born
    assert identity.kind == kind
    assert identity.number == number


def test_the_fixture_agrees_with_the_spec():
    for individual in range(0, 1000, 7):
        made = make_identity_number(date(1972, 9, 13), individual)
        checks = spec_check_digits(f"130972{individual:03d}")
        assert made == (None if checks is None else f"130972{individual:03d}{checks}")


# --- century from the individual number ---------------------------------------------------------


@pytest.mark.parametrize(
    ("year2", "individual", "expected"),
    [
        (72, 0, 1900),
        (72, 499, 1900),
        (0, 0, 1900),
        (39, 499, 1900),
        (99, 499, 1900),
        (54, 500, 1800),
        (99, 749, 1800),
        (75, 600, 1800),
        (0, 500, 2000),
        (39, 500, 2000),
        (10, 749, 2000),
        (10, 750, 2000),
        (10, 899, 2000),
        (39, 999, 2000),
        (40, 900, 1900),
        (54, 900, 1900),
        (99, 999, 1900),
        (40, 500, None),
        (53, 749, None),
        (40, 750, None),
        (54, 750, None),
        (99, 899, None),
    ],
)
def test_century(year2, individual, expected):
    assert century(year2, individual) == expected


@pytest.mark.parametrize(
    ("ddmmyy", "start"),
    [
        ("010145", 500),  # 500-749 are 1854-1899 or 2000-2039, not 1945
        ("010153", 700),
        ("010140", 750),  # 750-899 are 2000-2039 only
        ("010199", 800),
        ("010160", 750),
    ],
)
def test_individual_number_that_fits_no_century_is_rejected(ddmmyy, start):
    head = head_with_check_digits(ddmmyy, start)
    assert 500 <= int(head[6:9]) <= 899
    with pytest.raises(InvalidIdentityNumber, match="individual number"):
        parse_identity_number(complete(head))


def spec_century(year2: int, individual: int) -> int | None:
    """The Tax Administration's table, written as ranges of years."""
    for low, high, first, last in [
        (0, 499, 1900, 1999), (500, 749, 1854, 1899), (500, 999, 2000, 2039), (900, 999, 1940, 1999)
    ]:
        if low <= individual <= high:
            for year in range(first, last + 1):
                if year % 100 == year2:
                    return year - year2
    return None


# --- property: every number made by the fixture is accepted ---------------------------------------


@st.composite
def births(draw: st.DrawFn) -> tuple[date, int]:
    """A birth date with an individual number that belongs to its century."""
    born = draw(st.dates(min_value=date(1854, 1, 1), max_value=date(2039, 12, 31)))
    if born.year < 1900:
        ranges = [(500, 749)]
    elif born.year < 2000:
        ranges = [(0, 499), (900, 999)] if born.year >= 1940 else [(0, 499)]
    else:
        ranges = [(500, 999)]
    low, high = draw(st.sampled_from(ranges))
    return born, draw(st.integers(min_value=low, max_value=high))


@given(birth=births(), d_number=st.booleans())
def test_every_made_number_is_accepted_with_its_birth_date_and_kind(birth, d_number):
    born, individual = birth
    number = make_identity_number(born, individual, d_number=d_number)
    assume(number is not None)
    identity = parse_identity_number(number)
    assert identity.birth_date == born
    assert identity.kind == (IdentifierKind.dnr if d_number else IdentifierKind.fnr)
    assert identity.number == number


@given(birth=births(), d_number=st.booleans(), data=st.data())
def test_changing_any_single_digit_makes_a_number_invalid(birth, d_number, data):
    born, individual = birth
    number = make_identity_number(born, individual, d_number=d_number)
    assume(number is not None)
    position = data.draw(st.integers(min_value=0, max_value=10))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    changed = number[:position] + digit + number[position + 1 :]
    with pytest.raises(InvalidIdentityNumber):
        parse_identity_number(changed)


@pytest.mark.parametrize("position", range(11))
def test_changing_any_single_digit_of_the_example_makes_it_invalid(position):
    for digit in "0123456789":
        if digit == EXAMPLE[position]:
            continue
        changed = EXAMPLE[:position] + digit + EXAMPLE[position + 1 :]
        with pytest.raises(InvalidIdentityNumber):
            parse_identity_number(changed)


@given(head=st.text(alphabet="0123456789", min_size=9, max_size=9), tail=st.integers(0, 99))
def test_any_eleven_digits_are_accepted_exactly_when_the_spec_allows(head, tail):
    number = f"{head}{tail:02d}"
    day, month, year2, individual = int(head[0:2]), int(head[2:4]), int(head[4:6]), int(head[6:9])
    d_number = day > 40
    day -= 40 if d_number else 0
    cent = spec_century(year2, individual)
    try:
        born = date(cent + year2, month, day) if cent is not None else None
    except ValueError:
        born = None
    expected_valid = born is not None and spec_check_digits(head) == number[9:]
    if expected_valid:
        identity = parse_identity_number(number)
        assert identity.birth_date == born
        assert identity.kind == (IdentifierKind.dnr if d_number else IdentifierKind.fnr)
    else:
        with pytest.raises(InvalidIdentityNumber):
            parse_identity_number(number)


# --- rejected numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "",
        "1309724802",  # 10 digits
        "130972480221",  # 12 digits
        "1309724802a",
        "13097248O22",  # letter O
        " 3097248022",
        "13097248022 ",
        " 13097248022",
        "130972 48022",
        "130972-48022",
        "+3097248022",
        "-3097248022",
        "1309724802.",
        "".join(chr(0xFF10 + int(d)) for d in EXAMPLE),  # full-width digits
        "".join(chr(0x0660 + int(d)) for d in EXAMPLE),  # Arabic-Indic digits
        "1309724802²",  # superscript two: str.isdigit() says yes
        "13097248022\n",
    ],
)
def test_anything_but_eleven_ascii_digits_is_rejected(number):
    with pytest.raises(InvalidIdentityNumber, match="11 digits"):
        parse_identity_number(number)


@pytest.mark.parametrize(
    "ddmmyy",
    [
        "310272",  # 31 February
        "300272",  # 30 February
        "290273",  # 29 February of a common year
        "310472",  # 31 April
        "001072",  # day 0
        "321072",  # day 32
        "400172",  # day 40: neither a day nor a D-number
        "011372",  # month 13
        "010072",  # month 0
        "015172",  # month + 40 (H-number): not accepted
        "720172",  # D-number with day 32
        "700272",  # D-number for 30 February
        "690273",  # D-number for 29 February of a common year
        "990199",
    ],
)
def test_numbers_that_do_not_start_with_a_real_date_are_rejected(ddmmyy):
    with pytest.raises(InvalidIdentityNumber, match="date"):
        parse_identity_number(complete(head_with_check_digits(ddmmyy)))


def test_29_february_1900_is_not_a_date_but_29_february_2000_is():
    head_1900 = head_with_check_digits("290200", 0)  # individual < 500: 1900, not a leap year
    assert int(head_1900[6:9]) <= 499
    with pytest.raises(InvalidIdentityNumber, match="date"):
        parse_identity_number(complete(head_1900))
    head_2000 = head_with_check_digits("290200", 500)
    assert parse_identity_number(complete(head_2000)).birth_date == date(2000, 2, 29)


def _heads_where_check_digit_is_ten() -> tuple[str, str]:
    """A head whose first check digit would be 10, and a 10-digit start whose second would be."""
    first_ten = second_ten = None
    for individual in range(500):
        head = f"130972{individual:03d}"
        first = spec_digit(head, SPEC_FIRST)
        if first == 10:
            first_ten = first_ten or head
            continue
        start = head + str(first)
        second = spec_digit(start, SPEC_SECOND)
        if second == 10:
            second_ten = second_ten or start
    assert first_ten and second_ten
    return first_ten, second_ten


def test_no_number_is_valid_where_the_first_check_digit_would_be_ten():
    head, _ = _heads_where_check_digit_is_ten()
    for tail in range(100):
        with pytest.raises(InvalidIdentityNumber, match="first check digit"):
            parse_identity_number(f"{head}{tail:02d}")


def test_no_number_is_valid_where_the_second_check_digit_would_be_ten():
    _, start = _heads_where_check_digit_is_ten()
    for last in "0123456789":
        with pytest.raises(InvalidIdentityNumber, match="second check digit"):
            parse_identity_number(start + last)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("13097248032", "first check digit"),
        ("13097248012", "first check digit"),
        ("13097248023", "second check digit"),
        ("13097248020", "second check digit"),
    ],
)
def test_wrong_check_digits_are_rejected(number, message):
    with pytest.raises(InvalidIdentityNumber, match=message):
        parse_identity_number(number)


def test_invalid_identity_number_is_a_value_error():
    with pytest.raises(ValueError):
        parse_identity_number("12345678901")
