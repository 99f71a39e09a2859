"""Pictures of the evaluation reports (report.py): matplotlib plots (Agg canvas, no pyplot state)
and frame thumbnails, each returned as a `data:` URI so that a page embeds it.

Thumbnails put a frame next to its masks, each tinted and outlined as in the overlay videos
(overlays.overlay_frame: red tint, yellow outline).
"""

import base64
import io
import logging
import math

import numpy as np
from PIL import Image

# Set before matplotlib's import, which logs at INFO that it built its font cache (on first use)
logging.getLogger("matplotlib").setLevel(logging.WARNING)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402 (after its logger's level)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from inference_handlers.evaluation.overlays import overlay_frame

LOW_J = 0.5             # J below this is marked in the J-over-time plots (the Recall threshold)
THUMBNAIL_HEIGHT = 120  # pixels of each panel of a thumbnail
NO_FRAME_GREY = 96      # background of a thumbnail whose frame image is not known (folder evaluator)
DPI = 80
BAR_COLOURS = ("#4c72b0", "#dd8452", "#55a868")
CHANGE_MARGIN = 0.1       # room beyond the largest change on a change axis (fraction of it)
MIN_CHANGE_RANGE = 0.01   # half-width of a change axis when nothing changed


def figure_uri(figure: Figure) -> str:
    """A matplotlib figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_uri(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) image as a base64 JPEG data URI."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def measure_limits(values: list[float]) -> tuple[float, float]:
    """x range of bars of scores: 0 to 1, widened to any value outside it."""
    return min(0.0, *values), max(1.0, *values)


def change_limits(values: list[float]) -> tuple[float, float]:
    """x range of bars of changes (B - A): symmetric about 0 and scaled to the largest change
    (with CHANGE_MARGIN room), so that small changes are not slivers on a 0-1 axis; MIN_CHANGE_RANGE
    on each side when nothing changed."""
    largest = max((abs(value) for value in values), default=0.0)
    half = largest * (1 + CHANGE_MARGIN) if largest > 0 else MIN_CHANGE_RANGE
    return -half, half


def bar_chart(names: list[str], values: dict[str, list[float]], title: str, changes: bool = False) -> str:
    """bar_figure as a data URI."""
    return figure_uri(bar_figure(names, values, title, changes))


def bar_figure(names: list[str], values: dict[str, list[float]], title: str, changes: bool = False) -> Figure:
    """Horizontal grouped bars: one group per name (first name on top), one bar per measure.
    Scores are drawn on 0-1 with a dotted line at LOW_J; `changes` on a symmetric axis scaled to
    them (change_limits) with a line at 0."""
    figure = Figure(figsize=(7, 0.8 + 0.28 * len(names) * max(1, len(values) / 2)))
    axes = figure.add_subplot()
    height = 0.8 / len(values)
    positions = np.arange(len(names))
    for k, (measure, numbers) in enumerate(values.items()):
        axes.barh(positions + k * height, numbers, height=height, label=measure,
                  color=BAR_COLOURS[k % len(BAR_COLOURS)])
    axes.set_yticks(positions + height * (len(values) - 1) / 2, names, fontsize=8)
    axes.invert_yaxis()
    every_value = [value for numbers in values.values() for value in numbers]
    if changes:
        axes.set_xlim(*change_limits(every_value))
        axes.axvline(0.0, color="black", linewidth=0.8)
    else:
        axes.set_xlim(*measure_limits(every_value))
        axes.axvline(LOW_J, color="grey", linewidth=0.5, linestyle=":")
    axes.legend(fontsize=8, loc="best" if changes else "lower right")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def low_frames_title(name: str, low: int, measure: str = "J") -> str:
    """A J-over-time plot's title: the sequence and how many of its frames are below LOW_J."""
    return f"{name} \u00b7 {low} frame{'' if low == 1 else 's'} with {measure} < {LOW_J}"


def time_plots(series: dict[str, tuple[list[int], list[float]]], measure: str = "J") -> str:
    """time_figure as a data URI."""
    return figure_uri(time_figure(series, measure))


def time_figure(series: dict[str, tuple[list[int], list[float]]], measure: str = "J") -> Figure:
    """Small multiples, one per sequence: `measure` against the frame index, values below LOW_J
    marked in red. Every row's first plot names the y axis, every column's lowest plot the x axis."""
    columns = min(4, len(series))
    rows = math.ceil(len(series) / columns)
    figure = Figure(figsize=(2.6 * columns, 1.5 * rows))
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for axes, (name, (positions, numbers)) in zip(grid.flat, series.items()):
        positions, numbers = np.asarray(positions), np.asarray(numbers, dtype=float)
        axes.plot(positions, numbers, linewidth=1, color=BAR_COLOURS[0], marker="." if len(numbers) < 30 else None)
        low = numbers < LOW_J
        axes.plot(positions[low], numbers[low], "o", color="#c44e52", markersize=3)
        axes.axhline(LOW_J, color="grey", linewidth=0.5, linestyle=":")
        axes.set_ylim(-0.02, 1.02)
        axes.set_title(low_frames_title(name, int(low.sum()), measure), fontsize=8)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # frame indices
    for axes in list(grid.flat)[len(series):]:
        axes.set_visible(False)
    for row in grid:
        row[0].set_ylabel(measure, fontsize=8)
    for column in range(columns):
        lowest = (len(series) - 1 - column) // columns  # the last row that has a plot in this column
        grid[lowest, column].set_xlabel("frame", fontsize=8)
    height = 1.5 * rows  # fixed margins in inches: tight_layout would draw every axes once more
    figure.subplots_adjust(left=0.7 / (2.6 * columns), right=0.98, bottom=0.45 / height, top=1 - 0.25 / height,
                           wspace=0.12, hspace=0.75)
    return figure


def thumbnail(image: np.ndarray | None, masks: list[np.ndarray | None], height: int = THUMBNAIL_HEIGHT) -> np.ndarray:
    """uint8 (height, W, 3): the frame, then one panel per mask (non-zero = foreground; None =
    no mask, the plain frame) tinted as in the overlay videos, side by side. Without a frame,
    a grey one of the first mask's size."""
    if image is None:
        shape = next(m.shape for m in masks if m is not None)
        image = np.full((*shape, 3), NO_FRAME_GREY, dtype=np.uint8)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    small = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    panels = [small]
    for mask in masks:
        labels = np.zeros(small.shape[:2], np.uint8) if mask is None else (np.asarray(mask) != 0).astype(np.uint8)
        panels.append(overlay_frame(small, labels))
    gap = np.full((height, 3, 3), 255, dtype=np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)
