"""The bounds a rules-of-engagement policy's settings keep (domain/rules.py validates a
document against them). Plain values, no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.deals.domain.engagement import MAX_DAYS
from shared.inputs import Money

# Bounds a policy's settings keep, so that every date the rules compute from a moment of this
# era stays a date (a window of 10**20 days overflowed, a 500) and every stored version can be
# named in a URL, an event and a log line.
MAX_HOURS = 8784  # a leap year
MAX_BUSINESS_DAYS = 260  # a year of working days
MAX_EXTENSIONS = 100
MONEY_LIMIT = Decimal(10) ** 14  # the platform's money columns (shared/inputs.MONEY_MAX_DIGITS)
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"

# Counts are JSON integers: strict, so true is not 1 nor "1" one (found from outside).
Days = Annotated[int, Field(le=MAX_DAYS, strict=True)]  # lower bounds: rules_from_mapping's
Hours = Annotated[int, Field(le=MAX_HOURS, strict=True)]
Limit = Annotated[Money, Field(lt=MONEY_LIMIT)]  # an amount as every request writes one
Weekday = Annotated[int, Field(strict=True)]
