"""Base for device settings models: unknown keys refused, errors pinned to a key path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (and so are NaN and infinity,
    which would switch a bound or a timeout off); instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def invalid(model: str, loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """A validation error pinned to a key path, for checks that span several fields."""
    error = PydanticCustomError("invalid_reference", message)
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=loc, input=value)]
    )
