"""``drift-monitor compare REFERENCE.npy CURRENT.npy``: run the drift tests on two files.

Exit status: 0 whether or not drift is found (3 with ``--fail-on-drift`` when it is),
2 for unusable input (one line on stderr saying what is wrong); ``--help`` lists them and
``--explain`` adds a legend of the columns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from drift_monitor.domain.errors import ValidationError
from drift_monitor.drift import TEST_NAMES, compare
from drift_monitor.drift.decision import DEFAULT_TESTS, normalise_tests
from drift_monitor.drift.report import DriftReport

NAME = "compare"
HELP = "Compare two .npy files of embeddings (reference, current) and report drift."

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DRIFT = 3


class InputError(Exception):
    """A problem with the command's input, reported as one line and exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="reference embeddings, .npy float array (n, d)")
    parser.add_argument("current", help="current embeddings, .npy float array (m, d)")
    parser.add_argument(
        "--tests",
        default=",".join(DEFAULT_TESTS),
        help=f"comma-separated tests deciding drift, from {','.join(TEST_NAMES)} "
        f"(default: {','.join(DEFAULT_TESTS)})",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise false-alarm rate (default 0.05)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--threshold", type=float, default=None, help="KL threshold of the kl test (default 0.15)"
    )
    parser.add_argument(
        "--correction",
        choices=("bonferroni", "holm", "fdr_bh"),
        default="bonferroni",
        help="correction over dimensions (default bonferroni)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fail-on-drift", action="store_true", help="exit with status 3 when drift is detected"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print what each column and number means"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXIT_STATUSES


EXIT_STATUSES = """exit status:
  0  the comparison ran (drift or not, unless --fail-on-drift)
  2  unusable input: a missing or unreadable file, a wrong shape, a bad option
     (one line on stderr says what is wrong)
  3  drift detected and --fail-on-drift given"""

LEGEND = """legend:
  kl_divergence  mean KL(current || reference) over per-dimension histograms, bias-corrected;
                 [lo, hi] is its bootstrap confidence interval (95 %)
  psi            population stability index over the same histograms
  statistic      the test's statistic: A^2 (ad), MMD^2 (mmd), K-S D (ks), ...
  p_value        the test's family p-value, corrected over dimensions: compare it with the
                 test's share of alpha (the "level" in --json); null for psi and kl
  effect         the practical size of the change: ad/ks the Wasserstein shift in typical
                 dimension spreads, mmd MMD^2 itself, psi/kl their value
  floor          the effect a change must reach to count as drift (the practical floor)
  drift          yes only when the test is significant AND its effect reaches the floor
  D              a dimension's K-S distance: the largest gap between the two CDFs (0 to 1)"""


def load_matrix(path_text: str, role: str) -> np.ndarray:
    """Load a 2-D float array from a ``.npy`` file, or raise :class:`InputError`."""
    path = Path(path_text)
    if not path.exists():
        raise InputError(f"{role} file {path} does not exist")
    if not path.is_file():
        raise InputError(f"{role} path {path} is not a file")
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY":
        raise InputError(f"{role} file {path} is not a .npy file (no NumPy header)")
    try:
        data: np.ndarray = np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{role} file {path} is not a readable .npy array ({exc})") from exc
    if data.dtype.kind not in "fiu":
        raise InputError(f"{role} file {path} holds {data.dtype} values, expected numbers")
    if data.ndim != 2:
        raise InputError(f"{role} file {path} has shape {data.shape}, expected (rows, dimension)")
    return data


def run(args: argparse.Namespace) -> int:
    try:
        tests = normalise_tests(args.tests)
        if not 0.0 < args.alpha < 1.0:
            raise InputError(f"--alpha must be between 0 and 1, got {args.alpha}")
        reference = load_matrix(args.reference, "reference")
        current = load_matrix(args.current, "current")
        report = compare(
            reference,
            current,
            tests=tests,
            alpha=args.alpha,
            seed=args.seed,
            threshold=args.threshold,
            correction=args.correction,
        )
    except InputError as exc:
        print(f"drift-monitor compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print(f"drift-monitor compare: error: {exc.field}: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"drift-monitor compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        print(format_report(report))
        if args.explain:
            print(LEGEND)
    if report.drift_detected and args.fail_on_drift:
        return EXIT_DRIFT
    return EXIT_OK


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_report(report: DriftReport) -> str:
    """Human-readable report: verdict, one line per test, top dimensions, quality notes."""
    verdict = "DRIFT" if report.drift_detected else "no drift"
    summary = report.summary
    if summary.lower().startswith(verdict.lower()):  # "no drift: no drift" said it twice
        summary = summary[len(verdict) :].lstrip(":; ")
    lines = [
        f"{verdict}: {summary}" if summary else verdict,
        f"reference {report.n_reference} x {report.dimension}, current {report.n_current} x "
        f"{report.dimension}, alpha {report.alpha:g} ({report.correction})",
    ]
    ci = report.confidence_interval
    ci_text = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci is not None else ""
    lines.append(f"kl_divergence {_fmt(report.kl_divergence)}{ci_text}, psi {_fmt(report.psi)}")
    lines.append(f"{'test':<11}{'statistic':>12}{'p_value':>12}{'effect':>10}{'floor':>9}  drift")
    for name, t in report.tests.items():
        lines.append(
            f"{name:<11}{_fmt(t.statistic):>12} {_fmt(t.p_value):>11} "
            f"{_fmt(t.effect_size):>9} {_fmt(t.effect_threshold):>8}  {'yes' if t.drift else 'no'}"
        )
    if report.top_dimensions:
        top = ", ".join(
            f"{d['dimension']} (effect {d['effect_size']:.3g}, D {d['ks_statistic']:.3g})"
            for d in report.top_dimensions[:5]
        )
        lines.append(f"top dimensions: {top}")
    novelty = report.tests.get("novelty")
    if novelty is not None:
        rows = ", ".join(
            f"{e['row']} (score {e['score']:.3g})" for e in novelty.details.get("examples", [])
        )
        lines.append(
            f"novel rows: {novelty.details['n_novel']} of {report.n_current} "
            f"({novelty.details['novel_share']:.1%}, {novelty.details['expected_share']:.1%} "
            f"expected by chance); highest: {rows}"
        )
    for note in report.quality.get("notes", []):
        lines.append(f"quality: {note}")
    return "\n".join(lines)
