"""What every config model is: frozen, and unknown keys are errors."""

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
