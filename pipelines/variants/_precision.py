"""Which numeric path a model runs on this CPU: the precision of its matrix products and the runtime.

float32 is the reference and the fallback. bfloat16 matrix products are
only worth it where the CPU has native bf16 instructions (AMX-BF16 on Intel
Sapphire Rapids and later, AVX512-BF16 on Cooper Lake and AMD Zen 4 and
later): there they run at about twice the fp32 rate (several times with
AMX). Elsewhere oneDNN emulates them, slower than fp32, so a bf16 request on
such a CPU falls back to fp32 with a warning instead of failing.

The choice is made from the CPU's flags at run time and recorded with the
scores (:func:`path_record`), so a run says which path scored it.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass, field
from typing import Any

from pipelines.variants import _gemm

__all__ = ["PRECISIONS", "ENGINES", "CpuInfo", "cpu_info", "native_bf16", "resolve_precision", "check_choice",
           "path_record", "choose_path", "PathFallbackWarning", "effective_precision"]

PRECISIONS = ("auto", "fp32", "bf16")
ENGINES = ("auto", "packed", "hf")

# flags worth recording with a benchmark or a run (lscpu / /proc/cpuinfo spelling)
RELEVANT_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")

MSG_CHOICE = "`{field}` must be one of {allowed}. Got {value!r} instead."
MSG_ENGINE_FALLBACK = (
    "{where}: engine 'packed' was requested, but it does not fit this model ({why}); running the transformers "
    "modules instead."
)
MSG_BF16_NEEDS_PACKED = "{where}: bf16 runs on the packed engine only ({why}); scoring in fp32."
MSG_FALLBACK = (
    "{where}: precision 'bf16' was requested, but this CPU ({cpu}) has no native bf16 matrix instructions "
    "(AVX512-BF16 or AMX-BF16; found {found}); bf16 would be emulated and slower than fp32. Scoring in fp32."
)


class PathFallbackWarning(RuntimeWarning):
    """A requested path (bf16, or the packed engine) cannot run here; fp32 / transformers is used instead."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the kernel reports it: model name, vendor, family/model numbers and flags."""

    model: str
    vendor: str
    family: int | None
    model_number: int | None
    flags: frozenset = field(default_factory=frozenset)
    cores: int = 1

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "vendor": self.vendor, "family": self.family, "model_number": self.model_number,
                "logical_cpus": self.cores, "flags": [f for f in RELEVANT_FLAGS if f in self.flags]}


def _parse_cpuinfo(text: str, *, cores: int) -> CpuInfo:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line:
            if fields and not line.strip():
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())

    def num(key: str) -> int | None:
        try:
            return int(fields[key])
        except (KeyError, ValueError):
            return None

    return CpuInfo(model=fields.get("model name", platform.processor() or "unknown"),
                   vendor=fields.get("vendor_id", "unknown"), family=num("cpu family"), model_number=num("model"),
                   flags=frozenset(fields.get("flags", "").split()), cores=cores)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, from ``/proc/cpuinfo`` (model and flags unknown where that file is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return CpuInfo(model=platform.processor() or "unknown", vendor="unknown", family=None, model_number=None,
                       cores=os.cpu_count() or 1)
    return _parse_cpuinfo(text, cores=os.cpu_count() or 1)


def native_bf16(info: CpuInfo | None = None) -> tuple[bool, str]:
    """Whether bf16 matrix products run natively here, and on which instructions."""
    info = info or cpu_info()
    if "amx_bf16" in info.flags:
        isa = "AMX-BF16"
    elif "avx512_bf16" in info.flags:
        isa = "AVX512-BF16"
    else:
        return False, "none"
    onednn = _onednn_bf16()
    if onednn is None:
        return False, f"{isa} (torch cannot tell whether oneDNN uses it)"
    if not onednn:
        return False, f"{isa} (but this torch build's oneDNN does not use it)"
    return True, isa


def _onednn_bf16() -> bool | None:
    """Whether torch's oneDNN runs bf16 natively on this CPU (None: it cannot tell)."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):
        return None


def check_choice(value: str, allowed: tuple[str, ...], *, field: str) -> str:
    if value not in allowed:
        raise ValueError(MSG_CHOICE.format(field=field, allowed=", ".join(allowed), value=value))
    return value


def resolve_precision(requested: str, *, where: str, info: CpuInfo | None = None) -> tuple[str, str]:
    """``(precision, reason)``: the precision to run for ``requested`` on this CPU.

    ``auto`` picks bf16 where it is native and fp32 elsewhere; ``bf16`` where it
    is not native falls back to fp32 with a :class:`PrecisionFallbackWarning`.

    Examples
    --------
    >>> resolve_precision("fp32", where="variant `rag`")
    ('fp32', 'requested')
    """
    check_choice(requested, PRECISIONS, field="precision")
    if requested == "fp32":
        return "fp32", "requested"
    info = info or cpu_info()
    ok, isa = native_bf16(info)
    if ok:
        return "bf16", f"native bf16 ({isa})"
    if requested == "bf16":
        warnings.warn(MSG_FALLBACK.format(where=where, cpu=info.model, found=isa), PathFallbackWarning,
                      stacklevel=3)
        return "fp32", f"bf16 requested but not native on this CPU ({isa}): fell back to fp32"
    return "fp32", f"auto: no native bf16 on this CPU ({isa})"


def effective_precision(requested: str, *, info: CpuInfo | None = None) -> str:
    """What ``requested`` runs as on this CPU, without warnings: ``fp32``, ``bf16`` or ``int8``.

    It keys the predict stage's cache, so that scores made in bf16 on one machine
    are not reused for an ``auto`` run on a machine without native bf16 (or the
    reverse). A model the packed engine does not fit runs fp32 whatever this says;
    its folder's hash keys the cache already.

    Examples
    --------
    >>> effective_precision("fp32")
    'fp32'
    """
    if requested in ("fp32", "int8"):
        return requested
    check_choice(requested, PRECISIONS, field="precision")
    return "bf16" if native_bf16(info)[0] else "fp32"


def path_record(*, precision: str, runtime: str, requested: str, reason: str, info: CpuInfo | None = None,
                **extra: Any) -> dict[str, Any]:
    """What scored a variant, for its identity, the manifest and the cache key.

    ``precision`` and ``runtime`` decide the scores (they belong in a cache key);
    ``cpu`` and ``torch`` say where it ran; the packed engine adds ``gemm``, its
    matrix-product kernel (:mod:`._gemm`; in fp32 the kernels differ by float32
    rounding, in bf16 by where results are rounded, within the bf16 tolerance of
    fp32 either way: recorded, not keyed).
    """
    info = info or cpu_info()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    return {"precision": precision, "runtime": runtime, "requested": requested, "reason": reason, **extra,
            "cpu": info.summary(), "torch": torch_version}


def choose_path(*, where: str, precision: str, engine: str, fits: tuple[bool, str],
                info: CpuInfo | None = None) -> dict[str, Any]:
    """The path record for a model: the packed engine where it fits (and was not refused), at the resolved precision.

    Parameters
    ----------
    where
        Names the model in warnings, e.g. ``"generator /path/to/folder"``.
    precision
        The requested precision (:data:`PRECISIONS`).
    engine
        The requested engine (:data:`ENGINES`): ``"auto"`` packed where it fits,
        ``"packed"`` the same but warns where it does not fit, ``"hf"`` always the
        transformers modules.
    fits
        ``(ok, why not)`` from the packed engine's ``supports``.

    Reduced precision runs on the packed engine only; a request that cannot be
    met falls back with a :class:`PathFallbackWarning` and says so in ``reason``.
    """
    check_choice(precision, PRECISIONS, field="precision")
    check_choice(engine, ENGINES, field="engine")
    ok, why = fits
    if engine == "hf" or not ok:
        if engine == "hf":
            reason = "engine 'hf' requested"
        else:
            reason = f"the packed engine does not fit this model: {why}"
            if engine == "packed":
                warnings.warn(MSG_ENGINE_FALLBACK.format(where=where, why=why), PathFallbackWarning, stacklevel=3)
        if precision == "bf16":
            warnings.warn(MSG_BF16_NEEDS_PACKED.format(where=where, why=reason), PathFallbackWarning, stacklevel=3)
            reason += "; bf16 requested, fell back to fp32"
        return path_record(precision="fp32", runtime="transformers", requested=precision, reason=reason, info=info)
    resolved, reason = resolve_precision(precision, where=where, info=info)
    return path_record(precision=resolved, runtime="torch-packed", requested=precision, reason=reason, info=info,
                       gemm=_gemm.kernel()["kernel"])
