"""Evaluation reports: one self-contained HTML page per run, one page comparing two runs, and the
validation pictures of training.

    results/<name>/report.html     `--task infer` (unless inference.report=false), and
                                   `python -m inference_handlers.evaluate ... --report`
    results/<name>/per_frame.json  the report's data, written with it: per sequence every frame's
                                   mask name and files (prediction, frame image or video, ground
                                   truth, overlay video) and the scored frames' values (J, F;
                                   saliency J, MAE, S); the header lists the failed videos
    python -m inference_handlers.report --runs results/a results/b [--out DIR]
                                   DIR/comparison.html (default DIR: results/compare_a_vs_b),
                                   made by compare.py

A report shows the header (protocol, frame set, ground truth read, headline score, checkpoint,
config, versions), per-sequence bars sorted worst first and the per-sequence table, J over time
per sequence (frames below 0.5 marked), and the worst frames as thumbnails (frame, ground truth,
prediction); a run without scores (`--input`) lists instead every sequence (video) with its frame
count, a link to its overlay video when one was written (inference.overlay=true) and its masks at
regular intervals, and an --input of many videos the ones that failed, with the reason.
Every picture is embedded (base64), so a page opens offline and can be mailed; every file is
written atomically. Numbers carry their exact value in `data-value` (the tests compare them with
metrics.json).
"""

import html
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.io import OVERLAYS_DIR, DataFileError, read_mask, read_prediction, read_rgb
from datasets.video import VideoFrames
from inference_handlers.evaluation.protocols import PROTOCOLS
from inference_handlers.evaluation.report_figures import LOW_J, bar_chart, image_uri, thumbnail, time_plots
from utils.errors import UserError
from utils.files import atomic_write_text, write_json

logger = logging.getLogger(__name__)

REPORT_NAME, PER_FRAME_NAME, METRICS_NAME = "report.html", "per_frame.json", "metrics.json"
WORST_FRAMES = 12       # thumbnails of the lowest-J frames (comparison: the most changed frames)
MASK_THUMBNAILS = 12    # thumbnails of a sequence of a run without scores, spread over its frames (at most)
RUN_THUMBNAILS = 60     # thumbnails of a run without scores in all (at least one per sequence)
HEADER_LABELS = {"input": "--input", "gt_left_out": "ground truth left out"}  # header keys shown otherwise


def _path(path) -> str | None:
    return None if path is None else os.path.abspath(path)


def inference_frames(sequences, results_dir: Path, mask_names: str, summary: dict) -> dict:
    """per_frame.json's "sequences" for `--task infer`: every frame's files, the overlay video (when
    written) and the scores kept in the summary's records."""
    measures = PROTOCOLS[summary["protocol"]].frame_measures
    table = {}
    for sequence in sequences:
        count = sequence.num_frames
        names = [sequence.output_name(i, mask_names) for i in range(count)]
        video = getattr(sequence, "video_path", None)
        record = summary["records"].get(sequence.name, {"frames": []})
        overlay = results_dir / OVERLAYS_DIR / f"{sequence.name}.mp4"
        table[sequence.name] = {
            "frames": names, "video": _path(video), "overlay": _path(overlay) if overlay.is_file() else None,
            "image": [None] * count if video else [_path(p) for p in sequence.frame_paths],
            "truth": [_path(sequence.mask_paths.get(i)) for i in range(count)],
            "prediction": [_path(results_dir / sequence.name / f"{name}.png") for name in names],
            "scored": record["frames"], **{key: record[key] for key in measures if key in record}}
    return table


@dataclass
class RunData:
    folder: Path
    header: dict         # protocol, frames, ground_truth, score_name, checkpoint, config, versions, ...
    sequences: dict      # per_frame.json "sequences"
    metrics: dict | None  # metrics.json (the summary without records); None when nothing was scored


def load_run(folder) -> RunData:
    """A run folder's per_frame.json and metrics.json (UserError when per_frame.json is missing)."""
    folder = Path(folder)
    try:
        data = json.loads((folder / PER_FRAME_NAME).read_text())
        metrics_path = folder / METRICS_NAME
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the report data of {folder}: {error} (run --task infer, or the "
                        f"evaluator with --report, into it first)") from error
    return RunData(folder, data["header"], data["sequences"], metrics)


def write_report(folder: Path, header: dict, sequences: dict, summary: dict) -> Path:
    """Write per_frame.json and report.html into `folder`; returns the report's path."""
    metrics = {key: value for key, value in summary.items() if key != "records"}
    header = {**header, **{key: summary[key] for key in ("protocol", "frames", "ground_truth", "score_name")}}
    write_json(folder / PER_FRAME_NAME, {"header": header, "sequences": sequences})
    run = RunData(folder, header, sequences, metrics if summary["score"] is not None else None)
    atomic_write_text(folder / REPORT_NAME, render_report(run))
    return folder / REPORT_NAME


# ---- pictures of frames ----

class FrameSource:
    """Reads the frame images of one sequence entry of per_frame.json (a video decodes forward,
    so ask for positions in increasing order)."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.video = VideoFrames(Path(entry["video"])) if entry.get("video") else None

    def frame(self, position: int) -> np.ndarray | None:
        try:
            if self.video is not None:
                return self.video[position]
            path = self.entry["image"][position]
            return None if path is None else read_rgb(path)
        except (DataFileError, IndexError, OSError) as error:
            logger.warning("report: frame %d of %s not shown: %s", position, self.entry["frames"][position], error)
            return None

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


def _truth(entry: dict, position: int) -> np.ndarray | None:
    path = entry["truth"][position]
    return None if path is None else read_mask(path) != 0


def _prediction(entry: dict, name: str) -> np.ndarray | None:
    """The prediction of frame `name` of a per_frame.json entry; None (with a warning) when its file
    does not read (e.g. written on another machine's disk by a process of a multi-node run)."""
    path = Path(entry["prediction"][entry["frames"].index(name)])
    try:
        return read_prediction(path)[0]
    except OSError as error:
        logger.warning("report: prediction %s not shown: %s", path, error)
        return None


def thumbnails(runs: list[RunData], picks: list[tuple[str, str]], with_truth: bool) -> list[str]:
    """Data URIs of (sequence, frame name) picks: the frame, its ground truth (with_truth), then
    each run's prediction."""
    uris = {}
    by_sequence = {}
    for sequence, name in picks:
        by_sequence.setdefault(sequence, []).append(name)
    for sequence, names in by_sequence.items():
        entries = [run.sequences[sequence] for run in runs]
        source = FrameSource(entries[0])
        try:
            for name in sorted(names, key=entries[0]["frames"].index):
                position = entries[0]["frames"].index(name)
                masks = [_truth(entries[0], position)] if with_truth else []
                masks += [_prediction(entry, name) for entry in entries]
                frame = source.frame(position)
                if frame is None and all(mask is None for mask in masks):
                    frame = np.full((2, 2, 3), 255, np.uint8)  # nothing to show: a blank panel
                uris[sequence, name] = image_uri(thumbnail(frame, masks))
        finally:
            source.close()
    return [uris[pick] for pick in picks]


# ---- HTML ----

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
th{background:#eee;cursor:pointer}td.num{text-align:right;font-variant-numeric:tabular-nums}
.low{background:#fbe3e3}.gain{color:#1a7f37}.loss{color:#c0392b}.note{background:#fff6d5;padding:.5em}
div.grid{display:flex;flex-wrap:wrap}figure{margin:4px;font-size:12px}figure img{display:block}img{max-width:100%}
pre{background:#f6f6f6;padding:.5em;font-size:12px;overflow:auto}"""

SCRIPT = """document.querySelectorAll("table.sortable th").forEach(function(th, column){
  th.addEventListener("click", function(){
    var body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    var up = th.dataset.order !== "up"; th.dataset.order = up ? "up" : "down";
    rows.sort(function(a, b){
      var x = a.cells[column].dataset.value || a.cells[column].textContent;
      var y = b.cells[column].dataset.value || b.cells[column].textContent;
      var d = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y; return up ? d : -d;});
    rows.forEach(function(row){ body.appendChild(row); });});});"""


def esc(value) -> str:
    return html.escape(str(value))


def number_cell(value: float, css: str = "") -> str:
    """A table cell with 4 decimals shown and the exact value in data-value."""
    return f'<td class="num {css}" data-value="{value!r}">{value:.4f}</td>'


def table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}<script>{SCRIPT}</script></body></html>\n")


def header_rows(run: RunData) -> list[list[str]]:
    header, metrics = run.header, run.metrics
    unscored = f"--input {header['input']} has no ground truth" if header.get("input") else "no annotated frame"
    score = (f'<td id="score" data-value="{metrics["score"]!r}">{esc(header["score_name"])} {metrics["score"]:.4f}</td>'
             if metrics else f"<td>not scored: {esc(unscored)}</td>")
    fields = [("protocol", header["protocol"]), ("frame set", header["frames"]),
              ("ground truth read", ", ".join(header["ground_truth"]) or "none")]
    fields += [(HEADER_LABELS.get(key, key), header[key]) for key in
               ("source", "input", "checkpoint", "config", "predictions", "gt_left_out", "versions") if header.get(key)]
    rows = [[f"<th>{esc(key)}</th>", f"<td>{esc(value)}</td>"] for key, value in fields]
    count = (f"{metrics['num_sequences']} sequences, {metrics['num_frames']} scored frames" if metrics
             else f"{len(run.sequences)} sequences, {sum(len(e['frames']) for e in run.sequences.values())} frames")
    if header.get("failures"):
        count += f"; {len(header['failures'])} failed (failures.json)"
    return rows[:3] + [["<th>headline</th>", score], ["<th>size</th>", f"<td>{esc(count)}</td>"]] + rows[3:]


def header_html(run: RunData, table_id: str) -> str:
    rows = "".join(f"<tr>{''.join(row)}</tr>" for row in header_rows(run))
    config = run.header.get("config_text")
    details = f"<details><summary>resolved config</summary><pre>{esc(config)}</pre></details>" if config else ""
    return f'<table id="{table_id}">{rows}</table>{details}'


def worst_frames(run: RunData, count: int) -> list[tuple[str, str, float]]:
    """(sequence, frame, J) of the `count` scored frames with the lowest J."""
    frames = [(sequence, name, value) for sequence, entry in run.sequences.items()
              for name, value in zip(entry["scored"], entry.get("J", []))]
    return sorted(frames, key=lambda item: item[2])[:count]


def spread_frames(run: RunData, count: int) -> list[tuple[str, str]]:
    """About `count` frames at regular intervals, at least one per sequence."""
    per_sequence = max(1, count // max(1, len(run.sequences)))
    picks = []
    for sequence, entry in run.sequences.items():
        total = len(entry["frames"])
        positions = sorted(set(np.linspace(0, total - 1, min(per_sequence, total)).round().astype(int).tolist()))
        picks += [(sequence, entry["frames"][p]) for p in positions]
    return picks


def figures_html(uris: list[str], captions: list[str]) -> str:
    figures = "".join(f'<figure><img src="{uri}" alt="thumbnail"><figcaption>{caption}</figcaption></figure>'
                      for uri, caption in zip(uris, captions))
    return f'<div class="grid">{figures}</div>'



def scored_sections(run: RunData, worst: int) -> str:
    """Overall scores, per-sequence bars and table, J over time, worst frames."""
    metrics, protocol = run.metrics, PROTOCOLS[run.header["protocol"]]
    overall = table(["measure", "value"],
                    [[f"<td>{esc(k)}</td>", number_cell(v)] for k, v in metrics["metrics"].items()], "overall")
    rows = metrics["sequences"]
    order = sorted(rows, key=lambda name: protocol.sequence_score(rows[name]))
    columns = [key for key in next(iter(rows.values())) if key != "frames"]
    bars = bar_chart(order, {m: [rows[name][m] for name in order] for m in protocol.bar_measures},
                     f"per sequence, worst {run.header['score_name']} first")
    sequence_rows = [[f"<td>{esc(name)}</td>", f'<td class="num">{rows[name]["frames"]}</td>',
                      *(number_cell(rows[name][c], "low" if c == "J_mean" and rows[name][c] < LOW_J else "")
                        for c in columns)] for name in order]
    series = {name: ([run.sequences[name]["frames"].index(f) for f in run.sequences[name]["scored"]],
                     run.sequences[name]["J"]) for name in order}
    picks = worst_frames(run, worst)
    captions = [f"{esc(s)} / {esc(f)}: J {j:.3f}" for s, f, j in picks]
    return (f'<h2>Overall</h2>{overall}<h2>Per sequence</h2><img id="bars" src="{bars}" alt="per-sequence bars">'
            f"{table(['sequence', 'frames', *columns], sequence_rows, 'sequences')}"
            f"<h2>J over time</h2><p>frames with J &lt; {LOW_J} in red</p>"
            f'<img id="j-over-time" src="{time_plots(series)}" alt="J over time">'
            f"<h2>Worst {len(picks)} frames</h2><p>frame | ground truth | prediction</p>"
            f"{figures_html(thumbnails([run], [(s, f) for s, f, _ in picks], True), captions)}")


def unscored_sections(run: RunData) -> str:
    """Every sequence of a run without scores, in a table: its name, frame count, overlay video
    (a link, when one was written) and masks at regular intervals (frame | prediction): up to
    MASK_THUMBNAILS per sequence, RUN_THUMBNAILS in all, at least one per sequence."""
    per_sequence = max(1, min(MASK_THUMBNAILS, RUN_THUMBNAILS // max(1, len(run.sequences))))
    picks = spread_frames(run, per_sequence * len(run.sequences))
    uris = dict(zip(picks, thumbnails([run], picks, False)))
    rows = []
    for name, entry in run.sequences.items():
        overlay = entry.get("overlay")
        link = (f'<a href="{esc(urllib.parse.quote(os.path.relpath(overlay, run.folder)))}">overlay video</a>'
                if overlay else "")
        shown = [(frame, uri) for (sequence, frame), uri in uris.items() if sequence == name]
        rows.append([f"<td>{esc(name)}</td>", f'<td class="num" data-value="{len(entry["frames"])}">'
                     f'{len(entry["frames"])}</td>', f"<td>{link}</td>",
                     f"<td>{figures_html([uri for _, uri in shown], [esc(frame) for frame, _ in shown])}</td>"])
    return ('<p class="note">No annotated frame was scored (no ground truth): the masks are shown at '
            f"regular intervals.</p><h2>Masks</h2><p>frame | prediction</p>"
            f"{table(['sequence', 'frames', 'overlay', 'masks'], rows, 'videos')}")


def failures_html(failures: list[dict]) -> str:
    """The videos of an --input run that failed, with the reason."""
    rows = [[f"<td>{esc(f['path'])}</td>", f"<td>{esc(f['sequence'])}</td>", f"<td>{esc(f['reason'])}</td>"]
            for f in failures]
    return f"<h2>Failed ({len(failures)})</h2>{table(['path', 'sequence', 'reason'], rows, 'failures')}"


def render_report(run: RunData, worst: int = WORST_FRAMES) -> str:
    """The HTML of one run's report."""
    body = header_html(run, "header")
    if run.header.get("failures"):
        body += failures_html(run.header["failures"])
    body += scored_sections(run, worst) if run.metrics is not None else unscored_sections(run)
    return page(f"Evaluation report: {run.folder.name}", body)


# ---- training: validation pictures ----

def validation_frames(sequences, count: int) -> list[tuple[object, int]]:
    """(sequence, frame index) of `count` fixed frames: the middle annotated frame of the first
    `count` sequences that have annotations (the same every validation)."""
    annotated = [s for s in sequences if s.mask_paths][:count]
    return [(s, s.annotated_indices[len(s.annotated_indices) // 2]) for s in annotated]


class ValidationFrames:
    """The label maps of the fixed validation frames (validation_frames), captured while validation
    predicts them: pass it as run_inference's frame_hook."""

    def __init__(self, sequences, count: int):
        self.frames = validation_frames(sequences, count)
        self.wanted = {(sequence.name, index) for sequence, index in self.frames}
        self.labels = {}  # (sequence name, frame index) -> uint8 (H, W) label map

    def __call__(self, sequence, index: int, labels: np.ndarray) -> None:
        if (sequence.name, index) in self.wanted:
            self.labels[sequence.name, index] = labels


def validation_images(frames, labels: dict) -> list[tuple[str, np.ndarray]]:
    """(tag, uint8 (H, W, 3) frame | ground truth | prediction) of the validation `frames`
    ((sequence, index) pairs), the prediction being the validation's own (`labels`, keyed by
    (sequence name, index) as ValidationFrames captures them)."""
    images = []
    for sequence, index in frames:
        frame = read_rgb(sequence.frame_paths[index])
        masks = [sequence.read_mask(index, frame.shape[:2]), labels[sequence.name, index]]
        images.append((f"val/{sequence.name}/{sequence.frame_name(index)}",
                       thumbnail(frame, masks, height=frame.shape[0])))
    return images


def markdown_table(summary: dict) -> str:
    """The per-sequence scores as a markdown table (tensorboard's text tab)."""
    rows = summary["sequences"]
    if not rows:
        return "no annotated frames"
    columns = list(next(iter(rows.values())))
    lines = ["| sequence | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
              + " |" for name, row in rows.items()]
    return "\n".join(lines)
