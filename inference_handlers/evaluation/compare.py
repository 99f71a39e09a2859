"""The comparison of two runs: one self-contained HTML page (report.py's header of each run, the
headline and per-sequence changes B - A, the most changed frames).

    python -m inference_handlers.report --runs results/a results/b [--out DIR]
    python -m inference_handlers.compare --runs results/a results/b [--out DIR]   (the same)
                                   DIR/comparison.html (default DIR: results/compare_a_vs_b)

Two runs are compared only when both have scored frames, with the same protocol and frame set,
against the same ground-truth files; a refusal names the run and the reason. Changes are shown
signed, with as many digits as they need not to read as zero (format_change), and drawn on an
axis scaled to them (report_figures.change_limits).
"""

import logging
from pathlib import Path

from inference_handlers.evaluation.evaluate import examples
from inference_handlers.evaluation.protocols import PROTOCOLS
from inference_handlers.evaluation.report import (METRICS_NAME, WORST_FRAMES, RunData, esc, figures_html, header_html,
                                                  load_run, number_cell, page, table, thumbnails)
from inference_handlers.evaluation.report_figures import bar_chart
from utils.errors import UserError
from utils.files import atomic_write_text

logger = logging.getLogger(__name__)

CHANGE_DECIMALS = 4  # decimals of a change shown in fixed point; smaller changes in scientific notation


def format_change(delta: float) -> str:
    """A change B - A, signed: 4 decimals ("+0.0123"), or 2 significant digits in scientific
    notation ("+5e-06") when 4 decimals would show it as zero; "0" when there is none."""
    if delta == 0:
        return "0"
    fixed = f"{delta:+.{CHANGE_DECIMALS}f}"
    return f"{delta:+.2g}" if float(fixed) == 0 else fixed


def change_class(delta: float) -> str:
    return "gain" if delta > 0 else "loss" if delta < 0 else ""


def change_cell(delta: float) -> str:
    """A table cell with the change as format_change shows it and the exact value in data-value."""
    return f'<td class="num {change_class(delta)}" data-value="{delta!r}">{format_change(delta)}</td>'


def scored_truth(run: RunData) -> dict:
    """{(sequence, frame): ground-truth file} of the scored frames."""
    return {(sequence, name): entry["truth"][entry["frames"].index(name)]
            for sequence, entry in run.sequences.items() for name in entry["scored"]}


def unscored_reason(run: RunData) -> str | None:
    """Why the run's report data (per_frame.json) hold no scored frame, from what they record (the
    --input it was run on, its videos, its ground-truth files, its frame set); None when they hold
    some. A metrics.json beside them with scores is another run's (an --input run of an earlier
    version wrote its report data into the test set's folder): said so."""
    if any(entry["scored"] for entry in run.sequences.values()):
        return None
    videos = [entry["video"] for entry in run.sequences.values() if entry.get("video")]
    annotated = sum(path is not None for entry in run.sequences.values() for path in entry["truth"])
    if run.header.get("input") or videos:
        reason = f"it was run on --input {run.header.get('input') or videos[0]} without ground truth"
    elif annotated:
        reason = (f"its {annotated} annotated frame(s) were all left out by the frame set "
                  f"{run.header.get('frames')}")
    else:
        reason = (f"none of the frames of its {len(run.sequences)} sequence(s) ({examples(sorted(run.sequences))}) "
                  f"has ground truth")
    if run.metrics is not None and run.metrics.get("score") is not None:
        reason += (f"; its {METRICS_NAME} ({run.metrics['score_name']} {run.metrics['score']:.4f} over "
                   f"{run.metrics['num_frames']} frames) is of another run into the same folder, whose report data "
                   f"were replaced; run that one again to compare it")
    return reason


def check_comparable(a: RunData, b: RunData) -> None:
    """Two runs are compared only when both have scored frames, with the same protocol and frame
    set, scored against the same ground-truth files."""
    refusal = f"cannot compare {a.folder} and {b.folder}"
    for run in (a, b):
        reason = unscored_reason(run)
        if reason is not None:
            raise UserError(f"{refusal}: {run.folder} has no scored frame: {reason}")
        if run.metrics is None:
            raise UserError(f"{refusal}: {run.folder} has scored frames in its per_frame.json but no {METRICS_NAME}")
    for key in ("protocol", "frames"):
        if a.header[key] != b.header[key]:
            raise UserError(f"{refusal}: different {key.replace('frames', 'frame set')} "
                            f"({a.header[key]} vs {b.header[key]})")
    truth_a, truth_b = scored_truth(a), scored_truth(b)
    common = truth_a.keys() & truth_b.keys()
    if not common:
        def scored(run, truth):
            return f"{run.folder} scored {len(truth)} frames of {examples(sorted({sequence for sequence, _ in truth}))}"
        raise UserError(f"{refusal}: no scored frame in common ({scored(a, truth_a)}; {scored(b, truth_b)})")
    differing = sorted(key for key in common if truth_a[key] != truth_b[key])
    if differing:
        sequence, name = differing[0]
        raise UserError(f"{refusal}: different ground truth ({len(differing)} frames, "
                        f"e.g. {sequence}/{name}: {truth_a[sequence, name]} vs {truth_b[sequence, name]})")


def changed_frames(a: RunData, b: RunData, sequences: list[str], count: int) -> list[tuple[str, str, float, float]]:
    """(sequence, frame, J of a, J of b) of the `count` frames whose J changed most."""
    frames = []
    for sequence in sequences:
        values_b = dict(zip(b.sequences[sequence]["scored"], b.sequences[sequence]["J"]))
        frames += [(sequence, name, j, values_b[name]) for name, j in
                   zip(a.sequences[sequence]["scored"], a.sequences[sequence]["J"]) if name in values_b]
    return sorted(frames, key=lambda item: -abs(item[3] - item[2]))[:count]


def render_comparison(a: RunData, b: RunData, count: int = WORST_FRAMES) -> str:
    check_comparable(a, b)
    protocol, score_name = PROTOCOLS[a.header["protocol"]], a.header["score_name"]
    rows_a, rows_b = a.metrics["sequences"], b.metrics["sequences"]
    common = [name for name in rows_a if name in rows_b]
    only = sorted(set(rows_a) ^ set(rows_b))
    scores = {name: (protocol.sequence_score(rows_a[name]), protocol.sequence_score(rows_b[name]))
              for name in common}
    order = sorted(common, key=lambda name: scores[name][1] - scores[name][0])
    delta_rows = [[f"<td>{esc(name)}</td>", number_cell(scores[name][0]), number_cell(scores[name][1]),
                   change_cell(scores[name][1] - scores[name][0])] for name in order]
    names = (a.folder.name, b.folder.name)
    bars = bar_chart(order, {f"{score_name} {names[1]} - {names[0]}": [scores[n][1] - scores[n][0] for n in order]},
                     f"per-sequence change of {score_name}, most lost first", changes=True)

    def listing(items):
        return ", ".join(f"{esc(n)} ({format_change(scores[n][1] - scores[n][0])})" for n in items) or "none"

    picks = changed_frames(a, b, common, count)
    captions = [f"{esc(s)} / {esc(f)}: J {ja:.3f} &rarr; {jb:.3f}" for s, f, ja, jb in picks]
    body = "".join(f"<h2>{esc(label)}: {esc(run.folder)}</h2>{header_html(run, f'header-{label}')}"
                   for label, run in (("A", a), ("B", b)))
    note = f'<p class="note">Sequences in one run only (left out): {esc(", ".join(only))}</p>' if only else ""
    headline = [number_cell(a.metrics["score"]), number_cell(b.metrics["score"]),
                change_cell(b.metrics["score"] - a.metrics["score"])]
    body += (f"<h2>Change B - A</h2>{note}{table([f'{score_name} A', f'{score_name} B', 'B - A'], [headline], 'headline')}"
             f"<p>gained most: {listing([n for n in reversed(order[-5:]) if scores[n][1] > scores[n][0]])}</p>"
             f"<p>lost most: {listing([n for n in order[:5] if scores[n][1] < scores[n][0]])}</p>"
             f"<img id=\"deltas\" src=\"{bars}\" alt=\"per-sequence change\">"
             f"{table(['sequence', f'{score_name} A', f'{score_name} B', 'B - A'], delta_rows, 'deltas-table')}"
             f"<h2>The {len(picks)} most changed frames</h2><p>frame | ground truth | A ({esc(names[0])}) | B ({esc(names[1])})</p>"
             f"{figures_html(thumbnails([a, b], [(s, f) for s, f, _, _ in picks], True), captions)}")
    return page(f"Comparison: {names[0]} vs {names[1]}", body)


def compare_runs(folder_a: str | Path, folder_b: str | Path, out: str | Path | None = None) -> Path:
    """Write comparison.html of the runs in `folder_a` and `folder_b` into `out` (default
    results/compare_<a>_vs_<b>) and return its path."""
    a, b = load_run(folder_a), load_run(folder_b)
    path = Path(out or Path("results") / f"compare_{a.folder.name}_vs_{b.folder.name}") / "comparison.html"
    atomic_write_text(path, render_comparison(a, b))
    return path
