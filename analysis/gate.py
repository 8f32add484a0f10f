"""Regression gates: a run against a baseline run of the same scenario, by its [thresholds.regression].

    [thresholds.regression]
    max_accepted_rate_drop = 0.05       # per stage, relative: (baseline - run) / baseline
    max_p95_increase = 0.25             # per operation, relative, p95 of successful calls
    max_throttle_share_increase = 0.01  # absolute, per throttle class, share of StartChatContact calls

Each check is a dict {name, limit, observed, passed, detail}; a limit not set is not checked. Two runs
of different scenarios, or whose stages do not line up (names in order), cannot be compared: that is
a `GateMismatch` (one line; exit code 2), never a pass or a fail.
"""

from __future__ import annotations

import math
from typing import Any

from chatload.analysis.pipeline import Analysis
from chatload.contracts import REGRESSION_KEYS, START_CHAT, THROTTLES


class GateMismatch(ValueError):
    """The two runs cannot be compared; str() is one line saying why."""


def regression_limits(meta: dict[str, Any]) -> dict[str, float]:
    """The [thresholds.regression] limits a run's meta.json carries (its resolved scenario)."""
    thresholds = (meta.get("scenario") or {}).get("thresholds") or {}
    table = thresholds.get("regression") or {}
    return {k: float(v) for k, v in table.items() if k in REGRESSION_KEYS and v is not None}


def _stages(result: Analysis) -> list[str]:
    return [str(s["name"]) for s in result.summary.get("stages", [])]


def check_comparable(baseline: Analysis, run: Analysis) -> None:
    """GateMismatch unless the two runs are of one scenario with the same stages."""
    a, b = baseline.summary.get("scenario"), run.summary.get("scenario")
    if a != b:
        raise GateMismatch(f"the runs are of different scenarios ({a!r} and {b!r}): nothing to compare")
    if _stages(baseline) != _stages(run):
        raise GateMismatch(
            f"the stages do not line up: baseline {', '.join(_stages(baseline)) or 'none'} against "
            f"{', '.join(_stages(run)) or 'none'}"
        )


def _check(name: str, limit: float, observed: float | None, detail: str) -> dict[str, Any]:
    passed = observed is None or observed <= limit + 1e-12
    return {"name": name, "limit": limit, "observed": observed, "passed": passed, "detail": detail}


def _p95(result: Analysis) -> dict[str, float]:
    frame = result.per_operation
    if "ok_p95_ms" not in frame.columns:
        return {}
    return {
        str(row["operation"]): float(row["ok_p95_ms"])
        for _, row in frame.iterrows()
        if row["ok_p95_ms"] is not None and not math.isnan(float(row["ok_p95_ms"]))
    }


def _throttle_share(summary: dict[str, Any], outcome: str) -> float | None:
    calls = (summary.get("calls") or {}).get(START_CHAT) or {}
    total = calls.get("total") or 0
    return (calls.get(outcome) or 0) / total if total else None


def gate(baseline: Analysis, run: Analysis, limits: dict[str, float]) -> list[dict[str, Any]]:
    """The regression checks of `run` against `baseline` (GateMismatch when they cannot be compared)."""
    check_comparable(baseline, run)
    checks: list[dict[str, Any]] = []
    if "max_accepted_rate_drop" in limits:
        limit = limits["max_accepted_rate_drop"]
        for before, after in zip(baseline.summary["stages"], run.summary["stages"], strict=True):
            a, b = before.get("accepted_rate"), after.get("accepted_rate")
            drop = None if not a else (a - (b or 0.0)) / a
            detail = f"accepted {b:.3g}/s against {a:.3g}/s" if a else "no accepted chats in the baseline"
            checks.append(_check(f"accepted_rate_drop[{before['name']}]", limit, drop, detail))
    if "max_p95_increase" in limits:
        limit = limits["max_p95_increase"]
        a_p95, b_p95 = _p95(baseline), _p95(run)
        for operation in sorted(set(a_p95) & set(b_p95)):
            a, b = a_p95[operation], b_p95[operation]
            increase = None if a <= 0 else (b - a) / a
            checks.append(_check(f"p95_increase[{operation}]", limit, increase, f"p95 {b:.0f} ms against {a:.0f} ms"))
    if "max_throttle_share_increase" in limits:
        limit = limits["max_throttle_share_increase"]
        for outcome in THROTTLES:
            a, b = _throttle_share(baseline.summary, outcome), _throttle_share(run.summary, outcome)
            increase = None if a is None or b is None else b - a
            detail = "no calls" if increase is None else f"{b:.2%} of StartChatContact calls against {a:.2%}"
            checks.append(_check(f"throttle_share_increase[{outcome}]", limit, increase, detail))
    return checks


def lines(checks: list[dict[str, Any]]) -> list[str]:
    """One line a check, for the console and the reports."""
    out = []
    for check in checks:
        verdict = "ok" if check["passed"] else "REGRESSION"
        observed = "n/a" if check["observed"] is None else f"{check['observed']:+.4g}"
        out.append(f"{verdict}: {check['name']} {observed} (limit {check['limit']:g}; {check['detail']})")
    return out


def regression_summary(baseline: Analysis, run: Analysis, limits: dict[str, float]) -> dict[str, Any]:
    """summary.json["regression"]: the baseline, every check, and whether all passed."""
    checks = gate(baseline, run, limits)
    return {
        "baseline": baseline.run.run_id,
        "baseline_dir": str(baseline.run.run_dir),
        "limits": limits,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def apply_regression(run: Analysis, baseline: Analysis) -> dict[str, Any]:
    """Gate `run` on `baseline` by the run's [thresholds.regression]: summary["regression"], one
    threshold entry per check (so junit.xml and the report list each one), and `passed` updated."""
    limits = regression_limits(run.run.meta)
    if not limits:
        raise GateMismatch(
            f"scenario {run.summary.get('scenario')!r} has no [thresholds.regression] table: nothing to gate on "
            f"(keys: {', '.join(REGRESSION_KEYS)})"
        )
    result = regression_summary(baseline, run, limits)
    summary = run.summary
    summary["regression"] = result
    summary["thresholds"] = [t for t in summary["thresholds"] if not str(t["name"]).startswith("regression ")] + [
        {
            "name": f"regression {c['name']}",
            "limit": c["limit"],
            "observed": c["observed"],
            "passed": c["passed"],
            "note": f"{c['detail']}; baseline {result['baseline']}",
        }
        for c in result["checks"]
    ]
    summary["passed"] = bool(summary["valid"]) and all(t["passed"] for t in summary["thresholds"])
    return result
