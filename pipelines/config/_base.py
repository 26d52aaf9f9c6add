"""Base class and error formatting shared by every config section.

Config is data, validated once and up front. Each section is a frozen pydantic
model that rejects unknown keys; the root model in :mod:`pipelines.config.audit`
assembles them. Errors are one line per problem, in the form
``{source}: field `{path}` must be {constraint}. Got {value!r} instead.``
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


def _tag_member(annotation: Any, tag: str) -> type[BaseModel] | None:
    """The member of a discriminated union (on ``kind``) whose tag is ``tag``."""
    for arg in getattr(annotation, "__args__", ()) or ():
        member = _tag_member(arg, tag)
        if member is not None:
            return member
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get("kind")
        if field is not None and tag in (getattr(field.annotation, "__args__", ()) or ()):
            return annotation
    return None


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, tuple[Any, ...]]:
    """Walk ``loc`` through nested models; return the model holding the last key, and ``loc``
    without the tags pydantic inserts for discriminated unions (``variants.0.rag.k`` -> ``variants.0.k``)."""
    current: Any = model
    shown: list[Any] = []
    union: Any = None
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if union is not None and isinstance(part, str):
            member = _tag_member(union, part)
            union = None
            if member is not None:
                current = member
                continue
        if isinstance(part, int):
            shown.append(part)
            continue
        shown.append(part)
        if last:
            break
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None, tuple(shown) + tuple(loc[i + 1:])
        field = current.model_fields.get(str(part))
        if field is None:
            return None, tuple(shown) + tuple(loc[i + 1:])
        union = field.annotation
        current = _unwrap_model(field.annotation)
    holder = current if isinstance(current, type) and issubclass(current, BaseModel) else None
    return holder, tuple(shown)


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """Find a BaseModel subclass inside ``Optional[...]``, ``list[...]`` or ``dict[str, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


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
        holder, shown_loc = _walk(model, loc)
        path = _dotted(shown_loc)
        kind = err.get("type", "")
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            valid = sorted(holder.model_fields) if holder is not None else []
            hint = did_you_mean(str(shown_loc[-1]), valid)
            lines.append(f"{source}: unknown key `{path}`.{hint} Valid keys here: {', '.join(valid)}.")
        elif kind == "union_tag_invalid":
            tags = str(ctx.get("expected_tags", "")).replace("'", "")
            hint = did_you_mean(str(ctx.get("tag")), [t.strip() for t in tags.split(",")])
            lines.append(f"{source}: field `{path}.kind` must be one of {tags}. Got {ctx.get('tag')!r} instead.{hint}")
        elif kind == "union_tag_not_found":
            lines.append(f"{source}: field `{path}.kind` is required but missing (each variant names its kind: "
                         f"finetuned, classifier, rag or predictions). Got {shown} instead.")
        elif kind == "missing":
            lines.append(f"{source}: field `{path}` is required but missing.")
        elif kind == "value_error":
            msg = str(ctx.get("error", err.get("msg", "is invalid")))
            if msg.startswith(("be ", "list ", "set ", "name ")):
                lines.append(f"{source}: field `{path}` must {msg}. Got {shown} instead.")
            elif path == "<root>":
                lines.append(f"{source}: {msg}")
            else:
                lines.append(f"{source}: in `{path}`: {msg}")
        else:
            msg = err.get("msg", "is invalid")
            if msg.startswith("Input "):
                msg = msg[len("Input "):]
            lines.append(f"{source}: field `{path}` {msg}. Got {shown} instead.")
    return " | ".join(lines)
