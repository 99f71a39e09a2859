"""Written files have the mode that any new file of the process gets, 0o666 less the umask (0o644
under the usual 022, 0o600 under 077), and folders 0o777 less the umask: the atomic writes once
left every mask, report and checkpoint 0o600 whatever the umask (tempfile.mkstemp's mode). (Every
file of a whole infer run: tests/e2e/test_file_modes_of_an_infer_run.py.)"""

from fractions import Fraction

import numpy as np
import torch

from checkpoints.training import save_checkpoint
from inference_handlers.inference.writers import overlay_video, write_mask
from utils.files import atomic_write_text, write_json

from support.file_modes import modes


def test_each_atomic_writer_gives_the_umask_mode(tmp_path, umask):
    results, model_dir = tmp_path / "results/tiny", tmp_path / "saved_models/tiny"
    written = [write_mask(results, "bear", "00000", np.eye(16, dtype=np.uint8)),
               results / "metrics.json", results / "report.html", model_dir / "last.pth", results / "bear.mp4"]
    write_json(written[1], {"score": 0.5})
    atomic_write_text(written[2], "<!doctype html>\n")
    save_checkpoint(written[3], model_state={"weight": torch.zeros(3)}, epoch=0, iteration=1, config={})
    with overlay_video(written[4], Fraction(10)) as video:
        video.add(np.zeros((16, 16, 3), dtype=np.uint8), np.eye(16, dtype=np.uint8))
    assert modes(written) == {str(path): 0o666 & ~umask for path in written}
    folders = [results, results / "bear", model_dir]
    assert modes(folders) == {str(path): 0o777 & ~umask for path in folders}
