"""Download the original 3DC-Seg's published weights and check that they load.

    python -m tasks.download bmvc_final      # the trained network -> saved_models/bmvc_final.pth
    python -m tasks.download csn_backbone    # the ir-CSN-152 backbone (csn.zip) ->
                                             #   saved_models/csn/irCSN_152_ft_kinetics_from_ig65m_f126851907.pth
        [--dest saved_models] [--url URL] [--config run_configs/bmvc_final.yaml]

The files come from the authors' server, as the original README links them (--url fetches from
another address). A partial download is kept as `<file>.part` and resumed by the next run. The
file is checked before it gets its final name: the checkpoint must load through the original
checkpoint's key table into the model of --config (checkpoints/weights.py), the backbone through the
backbone key tables into that model's encoder (checkpoints/backbone_formats.py). A file that is
already there and loads is not downloaded again. At the end the command that uses the file is
printed on stdout.
"""

import logging
import os
import runpy
from dataclasses import dataclass
from pathlib import Path

from checkpoints.weights import load_backbone_weights, load_model
from network import build_model
from utils.config import ModelConfig, load_config
from utils.download import extract_member, fetch
from utils.errors import UserError
from utils.files import ensure_writable_folder

logger = logging.getLogger("download")
DEFAULT_CONFIG = "run_configs/bmvc_final.yaml"


@dataclass(frozen=True)
class Release:
    url: str            # the original README's link
    folder: str         # below --dest, where the original README puts the file
    download_name: str  # the file at `url`
    final_name: str     # the weight file the configs name (inside the zip for an archive)
    kind: str           # "checkpoint" (--wts) or "backbone" (model.backbone_weights)

    @property
    def is_archive(self) -> bool:
        return self.download_name != self.final_name


RELEASES = {
    "bmvc_final": Release("https://omnomnom.vision.rwth-aachen.de/data/3DC-Seg/models/bmvc_final.pth",
                          "", "bmvc_final.pth", "bmvc_final.pth", "checkpoint"),
    "csn_backbone": Release("https://omnomnom.vision.rwth-aachen.de/data/3DC-Seg/models/csn.zip",
                            "csn", "csn.zip", "irCSN_152_ft_kinetics_from_ig65m_f126851907.pth", "backbone"),
}


def check_weights(release: Release, path: Path, model: ModelConfig) -> None:
    """Load `path` into the configured model (checkpoint) or its encoder (backbone); UserError if it does not."""
    if release.kind == "checkpoint":
        load_model(model, path)
    else:
        load_backbone_weights(build_model(model).encoder, path)


def checked(release: Release, path: Path, model: ModelConfig, config_path: str, name: Path) -> None:
    """check_weights, with the problem restated for the file's final `name`."""
    what = "a 3DC-Seg checkpoint" if release.kind == "checkpoint" else "a backbone"
    try:
        check_weights(release, path, model)
    except UserError as error:
        raise UserError(f"{name} does not load as {what} for the model of {config_path}: {error}") from None


def download(choice: str, dest: str, url: str | None, config_path: str) -> tuple[Path, bool]:
    """Fetch, check and name the file of RELEASES[choice] under `dest`; returns its path and
    whether it was downloaded (False: it was already there and loads)."""
    release = RELEASES[choice]
    model = load_config(config_path).model
    folder = ensure_writable_folder(Path(dest) / release.folder, "download")
    final = folder / release.final_name
    if final.exists():
        try:
            check_weights(release, final, model)
        except UserError as error:
            raise UserError(f"{final} is already there but does not load ({error}); move it away to "
                            "download it again") from None
        return final, False
    url = url or release.url
    part = folder / f"{release.download_name}.part"
    logger.info("downloading %s to %s", url, part)
    fetch(url, part)
    checked_file = folder / f"{release.final_name}.part" if release.is_archive else part
    try:
        if release.is_archive:
            extract_member(part, release.final_name, checked_file)
        checked(release, checked_file, model, config_path, final)
    except UserError:
        checked_file.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        raise
    os.replace(checked_file, final)
    part.unlink(missing_ok=True)
    return final, True


def usage_command(release: Release, path: Path, config_path: str) -> str:
    """The command line that uses the downloaded file."""
    if release.kind == "checkpoint":
        return f"python main.py -c {config_path} --task infer --wts {path} --input my_video.mp4"
    return f"python main.py -c {config_path} --task train model.backbone_weights={path}"


if __name__ == "__main__":  # the command's former name: python -m tasks.download
    runpy.run_module("tools.download", run_name="__main__", alter_sys=True)
