"""Per-frame measures and per-sequence statistics (definitions: shared/reference/FORMATS.md §3).

Region and boundary (DAVIS toolkit, davisvideochallenge/davis2017-evaluation `davis2017/metrics.py`
and `utils.py`, re-implemented with NumPy/SciPy so that the numbers are the toolkit's):
- J = |M n G| / |M u G| on boolean masks; 1 when both are empty.
- F: boundary maps by `seg2bmap`, each dilated with a disk of radius ceil(0.008 * image diagonal)
  (computed as "Euclidean distance <= radius", which selects the same pixels: a k-d tree of
  boundary pixels, or a distance transform for boundaries that fill their box);
  precision = predicted boundary pixels within reach of the ground-truth boundary / predicted
  boundary pixels, recall the other way round, F = 2PR / (P + R). No predicted boundary: P = 1,
  R = 0; no ground-truth boundary: P = 0, R = 1; neither: F = 1.
- Mean, Recall (fraction of frames > 0.5) and Decay (mean of the first quarter minus mean of the
  last quarter, 4 overlapping bins at round(linspace(1, N, 5))).

Saliency (pysodmetrics, lartpang/PySODMetrics, the VSOD toolboxes' conventions): a prediction is
an 8-bit grey map read as probability / 255 and min-max normalised per frame; MAE, the F-measure
curve with beta^2 = 0.3 over 256 thresholds and S-measure (alpha = 0.5) come from pysodmetrics.
The original 3DC-Seg's F (pixels of all frames pooled, beta = 1, max over thresholds) is computed
here from 256-bin histograms so that it can be summed over sequences and processes.
"""

import functools
import math
import warnings

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

BOUNDARY_FRACTION = 0.008  # F's matching distance, as a fraction of the image diagonal (DAVIS)
SALIENCY_BETA2 = 0.3       # beta^2 of the VSOD F-measure
LEVELS = 256               # grey levels of a saliency map = thresholds of the F curves


@functools.cache
def _saliency_measures():
    """pysodmetrics' prepare_data, F-measure, MAE and S-measure; imported on first use, since it
    pulls in scikit-learn (about a second of start-up that DAVIS and FBMS runs do not need)."""
    from py_sod_metrics import MAE, Fmeasure, Smeasure
    from py_sod_metrics.utils import prepare_data

    with warnings.catch_warnings():  # Fmeasure warns that it will be renamed; its curve is the one we need
        warnings.simplefilter("ignore")
        f_measure = Fmeasure(beta=SALIENCY_BETA2)
    return prepare_data, f_measure, MAE(), Smeasure(alpha=0.5)


def region_similarity(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """J of two masks (non-zero = foreground); 1 when both are empty."""
    union = np.count_nonzero(np.logical_or(prediction, ground_truth))
    if union == 0:
        return 1.0
    return np.count_nonzero(np.logical_and(prediction, ground_truth)) / union


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundary of a mask, offset half a pixel towards the origin (D. Martin, BSDS):
    a pixel is on the boundary when it differs from its right, lower or lower-right neighbour."""
    seg = mask.astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element (X^2 + Y^2 <= r^2), as skimage.morphology.disk."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[None, :] ** 2 + offsets[:, None] ** 2 <= radius ** 2


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUNDARY_FRACTION) -> int:
    """Matching distance in pixels: bound_th itself if >= 1, else ceil(bound_th * diagonal)."""
    return int(bound_th) if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape))


def _within_reach(boundary: np.ndarray, other: np.ndarray, radius: int) -> int:
    """Pixels of `boundary` inside the dilation of `other` by disk(radius), i.e. at Euclidean
    distance <= radius from a pixel of `other` (instead of the toolkit's cv2.dilate: the same
    pixels). Boundaries are thin, so a k-d tree of `other`'s pixels answers in about a
    millisecond; for a boundary that fills its box (noise), an exact distance transform. Pixels
    on both boundaries are at distance 0: only the others are looked up."""
    shared = np.logical_and(boundary, other)
    points, targets = np.argwhere(boundary & ~shared), np.argwhere(other)
    if len(points) + len(targets) > boundary.size // 8:
        distance = distance_transform_edt(~other)
        return np.count_nonzero(np.logical_and(boundary, distance <= radius + 1e-9))
    if len(points) == 0:
        return np.count_nonzero(shared)
    # integer squared distances: <= radius**2 exactly when below radius**2 + 0.5
    distance, _ = cKDTree(targets).query(points, distance_upper_bound=math.sqrt(radius ** 2 + 0.5))
    return np.count_nonzero(shared) + np.count_nonzero(np.isfinite(distance))


def _boundary_box(*masks: np.ndarray) -> tuple[slice, slice] | None:
    """The box where seg2bmap of the masks can be non-zero: their foreground, one pixel more above
    and to the left, and one more row below and column to the right (background there, so
    seg2bmap of the crop equals the crop of seg2bmap, at the image's last row and column too);
    None when all masks are empty."""
    rows = np.flatnonzero(np.logical_or.reduce([mask.any(axis=1) for mask in masks]))
    cols = np.flatnonzero(np.logical_or.reduce([mask.any(axis=0) for mask in masks]))
    if len(rows) == 0:
        return None
    return (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))


def boundary_f(prediction: np.ndarray, ground_truth: np.ndarray,
               bound_th: float = BOUNDARY_FRACTION) -> float:
    """DAVIS boundary F-measure of two masks of the same shape (non-zero = foreground)."""
    crop = _boundary_box(prediction, ground_truth)
    if crop is None:
        return 1.0  # both empty: no boundary on either side
    pred_boundary, gt_boundary = seg2bmap(prediction[crop]), seg2bmap(ground_truth[crop])
    n_pred, n_gt = np.count_nonzero(pred_boundary), np.count_nonzero(gt_boundary)
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0  # both empty: P = R = 1; one empty: P or R = 0
    radius = boundary_radius(prediction.shape, bound_th)
    precision = _within_reach(pred_boundary, gt_boundary, radius) / n_pred
    recall = _within_reach(gt_boundary, pred_boundary, radius) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def statistics(per_frame: list[float]) -> dict:
    """{"mean", "recall", "decay"} of a sequence's per-frame values (DAVIS `db_statistics`; the
    bin edges are kept as ints where the toolkit's uint8 wraps past 256 frames)."""
    values = np.asarray(per_frame, dtype=np.float64)
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
    bins = [values[edges[i]:edges[i + 1] + 1] for i in range(4)]
    return {"mean": float(np.mean(values)), "recall": float(np.mean(values > 0.5)),
            "decay": float(np.mean(bins[0]) - np.mean(bins[3]))}


def saliency_frame(probability: np.ndarray, ground_truth: np.ndarray) -> dict:
    """Per-frame saliency measures of a uint8 (H, W) grey map against a mask (non-zero =
    foreground): {"MAE", "S", "f_curve" (256 F_beta values, beta^2 = 0.3, thresholds 255..0),
    "fg_hist", "bg_hist" (256-bin histograms of the raw grey levels on ground-truth foreground
    and background, for the pooled beta = 1 F)}."""
    prepare_data, f_measure, mae, s_measure = _saliency_measures()
    gt_255 = np.where(ground_truth != 0, 255, 0).astype(np.uint8)
    pred, gt = prepare_data(probability.astype(np.uint8), gt_255)  # pred / 255, min-max; gt > 128
    _, _, f_curve = f_measure.cal_pr(pred, gt)
    levels = probability.astype(np.uint8).ravel()
    return {"MAE": float(mae.cal_mae(pred, gt)), "S": float(s_measure.cal_sm(pred, gt)),
            "f_curve": f_curve.tolist(),
            "fg_hist": np.bincount(levels[gt.ravel()], minlength=LEVELS).tolist(),
            "bg_hist": np.bincount(levels[~gt.ravel()], minlength=LEVELS).tolist()}


def max_f_from_histograms(fg_hist, bg_hist, beta2: float = 1.0) -> float:
    """Max over thresholds t of F_beta for "grey level >= t", from pixel histograms of the
    foreground and background (the original's pooled measure with beta2 = 1; 0 where P + R = 0)."""
    true_pos = np.cumsum(np.asarray(fg_hist, dtype=np.float64)[::-1])   # pixels >= t, t = 255..0
    predicted = true_pos + np.cumsum(np.asarray(bg_hist, dtype=np.float64)[::-1])
    total_pos = max(float(np.sum(fg_hist)), 1.0)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = true_pos / total_pos
    denominator = beta2 * precision + recall
    f = np.divide((1 + beta2) * precision * recall, denominator, out=np.zeros_like(denominator),
                  where=denominator > 0)
    return float(f.max())
