"""England's child and school identifiers (NHS number, UPN, school URN, CIN referral code) as checked types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

# UPN check letters: the alphabet without I, O and S (DfE "Unique pupil numbers" guidance).
UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"

# Children in Need census, source of referral.
REFERRAL_SOURCE_CODES = (
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
)


def nhs_number_problem(value: str) -> str | None:
    """What is wrong with an NHS number, or None; never mentions the number itself."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return "NHS number must be exactly 10 digits"
    total = sum(int(digit) * weight for digit, weight in zip(value[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(value[9]):
        # A remainder giving 10 means no valid number has these first nine digits.
        return "NHS number check digit does not match"
    return None


def upn_check_letter(last_twelve: str) -> str:
    """The check letter for characters 2-13 of a UPN: weights 2..13, sum mod 23."""
    total = 0
    for weight, char in enumerate(last_twelve, start=2):
        # A temporary UPN ends in a letter, valued by its place in the check alphabet.
        value = int(char) if char.isdigit() else UPN_CHECK_LETTERS.index(char)
        total += weight * value
    return UPN_CHECK_LETTERS[total % 23]


def upn_problem(value: str) -> str | None:
    """What is wrong with a UPN, or None; never mentions the UPN itself."""
    if len(value) != 13 or not value.isascii():
        return "UPN must be 13 characters"
    body, last = value[1:12], value[12]
    if (
        value[0] not in UPN_CHECK_LETTERS
        or not body.isdigit()
        or not (last.isdigit() or last in UPN_CHECK_LETTERS)
    ):
        return "UPN must be a check letter then 12 digits, or 11 digits and a letter"
    if upn_check_letter(value[1:]) != value[0]:
        return "UPN check letter does not match"
    return None


def _checked(problem_of, error_type: str):
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem is not None:
            raise PydanticCustomError(error_type, problem)
        return value

    return check


def _urn_problem(value: str) -> str | None:
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        return "school URN must be exactly 6 digits"
    return None


_Stripped = StringConstraints(strip_whitespace=True)

NhsNumber = Annotated[
    str,
    _Stripped,
    AfterValidator(_checked(nhs_number_problem, "nhs_number")),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{10}$",
                    "description": "NHS number: 10 digits, the last a modulus-11 check digit."}),
]
Upn = Annotated[
    str,
    _Stripped,
    AfterValidator(_checked(upn_problem, "upn")),
    WithJsonSchema({"type": "string", "pattern": "^[A-HJ-NP-RT-Z][0-9]{11}[0-9A-HJ-NP-RT-Z]$",
                    "description": "Unique Pupil Number: a check letter, then 12 digits or 11 digits and a letter."}),
]
SchoolUrn = Annotated[
    str,
    _Stripped,
    AfterValidator(_checked(_urn_problem, "school_urn")),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{6}$",
                    "description": "School Unique Reference Number: 6 digits."}),
]
ReferralSourceCode = Literal[
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
]
