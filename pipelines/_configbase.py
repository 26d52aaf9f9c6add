"""Base class and error formatting shared by every config section.

Config is data, validated once and up front. Each section is a frozen pydantic
model that rejects unknown keys. Sections live next to the code that uses them
(``pipelines/variants/config.py``, ``pipelines/evaluation/config.py``) and the
root model in ``pipelines/config.py`` assembles them.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Section", "format_validation_error", "did_you_mean"]


class Section(BaseModel):
    """A frozen config section that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk ``loc`` through nested pydantic models; return the model holding the last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap_model(field.annotation)
        if current is None:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """Find a BaseModel subclass inside ``Optional[...]``, ``list[...]`` or ``dict[str, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError, *, model: type[BaseModel], source: str
) -> str:
    """Turn a pydantic error into our one-line style.

    ``{source}: field `{path}` must be {constraint}. Got {value!r} instead.``
    For unknown keys the message lists the valid keys and suggests the closest one.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        path = ".".join(str(p) for p in loc) or "<root>"
        kind = err.get("type", "")
        value = err.get("input")
        if kind == "extra_forbidden":
            holder = _model_at(model, loc)
            valid = sorted(holder.model_fields) if holder is not None else []
            hint = did_you_mean(str(loc[-1]), valid)
            lines.append(
                f"{source}: unknown key `{path}`.{hint} Valid keys here: {', '.join(valid)}."
            )
        elif kind == "missing":
            lines.append(f"{source}: field `{path}` is required but missing.")
        else:
            shown = repr(value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            if kind == "value_error":
                msg = str((err.get("ctx") or {}).get("error", err.get("msg", "is invalid")))
                if msg.startswith("be ") or msg.startswith("list ") or msg.startswith("set "):
                    lines.append(f"{source}: field `{path}` must {msg}. Got {shown} instead.")
                elif path == "<root>" or len(loc) == 0:
                    lines.append(f"{source}: {msg}")
                else:
                    lines.append(f"{source}: in `{path}`: {msg}")
                continue
            msg = err.get("msg", "is invalid")
            if msg.startswith("Input "):
                msg = msg[len("Input "):]
            lines.append(f"{source}: field `{path}` {msg}. Got {shown} instead.")
    return " | ".join(lines)
