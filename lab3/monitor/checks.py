"""The monitoring checks: drift of each measure, of the answers, missing readings, and quality
when labels are known. Each alarm is a sentence a person can act on, and a run with an alarm
also says how much it matters (quality, when labels say it) and the next step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lab1.core import profile as profiles
from lab1.core.gate import side_by_side
from lab1.core.params import GateParams, MonitoringParams
from lab3.monitor.traffic import Traffic

# What each measure means, for the report's readers (lab1/core/features.py computes them).
MEANINGS = {
    "day_missing": "the day's reading is missing",
    "n_missing": "missing readings in the 15-day window",
    "dev_from_median": "the day minus the window's median",
    "abs_dev_from_median": "how far the day is from the window's median",
    "robust_z": "the day's distance from the median, in units of the window's spread",
    "dev_from_neighbours": "the day minus the mean of the days either side",
    "abs_dev_from_neighbours": "how far the day is from the days either side",
    "step_in": "the jump from the day before",
    "step_out": "the jump to the day after",
    "same_as_prev": "the day repeats the day before exactly",
    "same_as_next": "the day after repeats the day exactly",
    "equal_run": "days in a row with exactly the same reading",
    "equal_pairs": "exactly repeated readings in the window",
    "trend": "the window's slope (degrees per day)",
    "dev_from_left": "the day minus the week before it",
    "dev_from_right": "the day minus the week after it",
    "fit_residual": "the day's distance from a straight line through the window",
    "window_std": "how much the window's readings vary",
    "max_abs_step": "the largest day-to-day jump in the window",
    profiles.PREDICTION: "the model's answer: its probability that a day is faulty",
}


@dataclass
class Drift:
    name: str
    ks: float
    p_value: float
    psi: float
    drifted: bool
    reference_shares: list[float]
    current_shares: list[float]
    computable: bool = True  # False: NaN among the values (inputs far outside any weather)


@dataclass
class Result:
    traffic: Traffic
    rows: int
    drift: list[Drift]  # the features; the answer's drift is `prediction`
    prediction: Drift
    missing_share: float
    reference_missing_share: float
    min_rows: int
    quality: dict[str, float] = field(default_factory=dict)  # empty without labels
    labelled_rows: int = 0
    alarms: list[str] = field(default_factory=list)
    matters: str = ""  # how much the alarms matter: the quality labels show, or that none do
    next_step: str = ""  # what to do about them

    @property
    def drift_share(self) -> float:
        return sum(d.drifted for d in self.drift) / len(self.drift)

    def metrics(self) -> dict[str, float]:
        """The figures MLflow and Prometheus get."""
        return {
            "rows": self.rows,
            "drift_share": self.drift_share,
            "measures_drifted": sum(d.drifted for d in self.drift),
            "prediction_psi": self.prediction.psi,
            "prediction_ks": self.prediction.ks,
            "missing_share": self.missing_share,
            "faulty_answer_share": float(self.traffic.predicted.mean()),
            "alarm": float(bool(self.alarms)),
            "log_lines_left_out": self.traffic.skipped,
            # On served traffic: named apart from the pipeline's test metrics (accuracy, f1),
            # which the same logged model carries.
            **{f"served_{name}": value for name, value in self.quality.items()},
        }

    def verdict(self) -> str:
        """The whole verdict in one line: what moved, how much it matters, the next step."""
        if self.rows < self.min_rows:
            return f"too few to judge (at least {self.min_rows}): nothing flagged"
        if not self.alarms:
            return "nothing to act on"
        matters = self.matters[:1].upper() + self.matters[1:]
        return f"ALARM: {'; '.join(self.alarms)}. {matters}. Next: {self.next_step}"


def measure_drift(name: str, reference: dict[str, Any], values: np.ndarray, drift: Any) -> Drift:
    """Whether one measure moved. A measure that is not computable (extreme inputs, such as
    1e308, overflow into NaN) counts as moved, deliberately: training never made such values,
    and a NaN statistic compares false with every threshold, which read as "the same"."""
    statistic, p_value = profiles.ks(reference, values)
    psi = profiles.psi(reference, values)
    edges = [-np.inf, *reference["edges"], np.inf]
    current = (np.histogram(values, bins=edges)[0] / values.size).tolist()
    computable = not np.isnan(values).any() and np.isfinite([statistic, p_value, psi]).all()
    moved = not computable or (p_value < drift.ks_p_value and psi > drift.psi)
    return Drift(
        name, statistic, p_value, psi, bool(moved), reference["shares"], current, bool(computable)
    )


def run_checks(
    traffic: Traffic,
    profile: dict[str, Any],
    settings: MonitoringParams,
    gate: GateParams,
    labels: dict[tuple[str, int], tuple[int, str]] | None = None,
    tested: float | None = None,
) -> Result:
    """The checks on ``traffic``; ``tested``: the version's test accuracy when registered (the
    advice compares served quality with it)."""
    rule = profile["settings"]["missing_rule"]
    reference = profile["measures"]
    with np.errstate(all="ignore"):  # an overflow is a NaN measure, reported as such
        measured = profiles.measures(traffic.inputs, rule)
        measured[profiles.PREDICTION] = traffic.probabilities  # the answers: last
        *drift, prediction = [
            measure_drift(name, reference[name], values, settings.drift)
            for name, values in measured.items()
        ]
    result = Result(
        traffic=traffic,
        rows=len(traffic.keys),
        drift=drift,
        prediction=prediction,
        missing_share=float(np.isnan(traffic.inputs).mean()),
        reference_missing_share=profile["missing_share"],
        min_rows=settings.min_rows,
    )
    if labels is not None:
        result.quality, result.labelled_rows = quality(traffic, labels)
    result.alarms = alarms(result, settings, gate)
    if result.alarms:
        result.matters, result.next_step = advise(result, settings, gate, tested)
    return result


def quality(
    traffic: Traffic, labels: dict[tuple[str, int], tuple[int, str]]
) -> tuple[dict[str, float], int]:
    """Accuracy, F1 of "faulty" and recall per fault kind on the rows that have a label, and
    the upper end of a 95 % interval of accuracy and F1 (``accuracy_high``, ``f1_high``)."""
    known = [(i, labels[key]) for i, key in enumerate(traffic.keys) if key in labels]
    if not known:
        return {}, 0
    index = np.array([i for i, _ in known])
    truth = np.array([label for _, (label, _kind) in known])
    kinds = np.array([kind for _, (_label, kind) in known])
    said = traffic.predicted[index]
    figures = {"accuracy": float(np.mean(said == truth)), "f1": f1(truth, said)}
    requests = np.unique([traffic.keys[i][0] for i in index], return_inverse=True)[1]
    figures["accuracy_high"], figures["f1_high"] = upper_bounds(truth, said, requests)
    for kind in sorted(set(kinds[truth == 1]) - {""}):
        of_kind = (truth == 1) & (kinds == kind)
        figures[f"recall_{kind}"] = float(np.mean(said[of_kind] == 1))
    return figures, len(known)


def f1(truth: np.ndarray, said: np.ndarray) -> float:
    true_positive = np.sum((said == 1) & (truth == 1))
    denominator = np.sum(said == 1) + np.sum(truth == 1)
    return float(2 * true_positive / denominator) if denominator else 1.0


def upper_bounds(
    truth: np.ndarray, said: np.ndarray, requests: np.ndarray, rounds: int = 1000
) -> tuple[float, float]:
    """97.5th percentiles of accuracy and F1 over bootstrap resamples of whole requests: a
    request's rows (one station's week) are alike, so resampling rows would overstate how sure
    a few hundred rows make us."""
    rng = np.random.default_rng(0)
    groups = [np.flatnonzero(requests == r) for r in range(requests.max() + 1)]
    accuracies, f1s = [], []
    for _ in range(rounds):
        rows = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        accuracies.append(np.mean(said[rows] == truth[rows]))
        f1s.append(f1(truth[rows], said[rows]))
    return float(np.quantile(accuracies, 0.975)), float(np.quantile(f1s, 0.975))


def alarms(result: Result, settings: MonitoringParams, gate: GateParams) -> list[str]:
    """The reasons to act, in words; none when fewer than min_rows rows were served."""
    if result.rows < settings.min_rows:
        return []
    found = []
    moved = [
        d.name + ("" if d.computable else " (not computable)") for d in result.drift if d.drifted
    ]
    if result.drift_share > settings.drift.max_share:
        share, limit = side_by_side(result.drift_share, settings.drift.max_share, percent=True)
        found.append(
            f"the inputs drifted: {len(moved)} of {len(result.drift)} measures moved "
            f"({share}, over {limit}): {', '.join(moved)}"
        )
    if result.prediction.drifted:
        found.append(
            f"the answers drifted: the model says faulty for "
            f"{result.traffic.predicted.mean():.0%} of rows (PSI {result.prediction.psi:.2f})"
        )
    if result.missing_share > settings.max_missing_share:
        missing, limit = side_by_side(
            result.missing_share, settings.max_missing_share, percent=True
        )
        found.append(
            f"{missing} of readings are missing (over {limit}; "
            f"training: {result.reference_missing_share:.0%})"
        )
    for name, floor in floors(gate).items():
        # Only a shortfall beyond chance: a few hundred rows vary by a few points from week to
        # week, and a model at 0.93 would otherwise be flagged for a week at 0.89.
        if name in result.quality and result.quality[f"{name}_high"] < floor:
            value, high, minimum = side_by_side(
                result.quality[name], result.quality[f"{name}_high"], floor
            )
            found.append(
                f"{name} on served traffic {value}, surely under {minimum} "
                f"(95 % interval up to {high}; the gate's min_{name})"
            )
    return found


def floors(gate: GateParams) -> dict[str, float]:
    """The gate's minimum of each quality measure that the monitor checks served traffic for."""
    return {"accuracy": gate.min_accuracy, "f1": gate.min_f1}


# Where new training data goes in: readings from the stations that moved, faults injected into
# them as into the synthetic data (lab1/data_creation.py --csv sets this key).
CSV_OVERRIDE = "data_creation.temperature.csv_path"


def advise(
    result: Result, settings: MonitoringParams, gate: GateParams, tested: float | None = None
) -> tuple[str, str]:
    """How much the alarms matter and what to do next. Drift says the traffic changed, not that
    the model got worse: only labels tell which, so without them the next step is to get them."""
    q, n = result.quality, result.labelled_rows
    steps = []
    if result.missing_share > settings.max_missing_share:
        steps.append("find why readings are missing (a sensor, or the feed that sends them)")
    if not q:
        steps.append(
            "collect labels for this window's requests (CSV request_id,row,label[,fault_kind]) "
            "and run again with --labels FILE: they say whether to retrain or to accept the change"
        )
        return "no labels: quality unknown", "; ".join(steps)
    minimums = floors(gate)
    # Each measure, the high end of its interval and the gate's minimum, as many digits as
    # tell them apart; a sentence names only the minimums its comparison holds for.
    shown = {k: side_by_side(q[k], q[f"{k}_high"], floor) for k, floor in minimums.items()}
    measured = f"accuracy {shown['accuracy'][0]}, F1 {shown['f1'][0]} on {n} labelled rows" + (
        f" (test accuracy when registered: {tested:.3f})" if tested is not None else ""
    )

    def the_gates(names: list[str]) -> str:
        return "the gate's " + ", ".join(f"min_{k} {shown[k][2]}" for k in names)

    fell = [k for k, floor in minimums.items() if q[f"{k}_high"] < floor]
    if fell:
        steps.append(
            "retrain on readings from the conditions served (the stations and seasons that "
            f"moved): .venv/bin/python -m lab3.monitor --retrain -- -S {CSV_OVERRIDE}=FILE "
            "(columns date, station, temperature); the synthetic data's climates would not "
            "teach it the change"
        )
        return f"quality fell: {measured}, surely under {the_gates(fell)}", "; ".join(steps)
    under = [k for k, floor in minimums.items() if q[k] < floor]
    if under:
        steps.append("label more rows: these are too few to say whether the model got worse")
        highs = ", ".join(f"{k} up to {shown[k][1]}" for k in under)
        return (
            f"quality may have fallen: {measured}, under {the_gates(under)} but within chance "
            f"(95 % interval: {highs})",
            "; ".join(steps),
        )
    if result.prediction.drifted:
        steps.append(
            f"look at the stations flagged faulty ({result.traffic.predicted.mean():.0%} of "
            "rows): with quality held, the model is finding real faults"
        )
    steps.append(
        "nothing to retrain for; if this traffic is the new normal, accept it: a version trained "
        f"on data that includes it (-S {CSV_OVERRIDE}=FILE) moves the reference, and until then "
        "this alarm repeats"
    )
    return f"quality held: {measured}, at or above {the_gates(list(minimums))}", "; ".join(steps)
