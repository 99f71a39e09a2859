"""README.md and docs/*.md match the repository.

What a page quotes as code (inline `code` or a fenced block) is checked where it names this
repository: a path whose first component is a top-level entry of the repository (`tasks/...`,
`run_configs/...`, `main.py`) must exist, except under the folders runs write into (`data/`,
`results/`, `saved_models/`), whose paths are examples of generated files. The code inside a link
to another site (the original's `main.py` on GitHub) names that site's files and is not checked.
Also: every run config named exists, every relative link resolves (to its heading too), every
`main.py` command names its --task, and no page points at material a clone does not have. (That
every documented `python -m <module>` answers --help: tests/e2e/test_documented_modules_answer_help.py.)
"""

import re
import subprocess
from pathlib import Path

import pytest

from support.doc_pages import COMMAND_NAMES, DOC_FILES, EXTERNAL_LINK, documented_modules, split_code
from support.paths import REPO_ROOT

GENERATED_OUTPUTS = ("data/", "results/", "saved_models/", ".venv/")  # what runs write: example paths
GENERATED_CONFIG_NAMES = {"config.yaml"}  # the resolved config a run writes beside its outputs
NOT_IN_A_CLONE = ("SPEC §", "shared/reference", "../shared")  # background material that does not ship
PLACEHOLDER_CHARACTERS = set("<>{}*…|$")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
RUN_CONFIG = re.compile(r"run_configs/[\w.-]+\.yaml")
BARE_CONFIG = re.compile(r"[\w-]+\.yaml")


def top_level_entries() -> set[str]:
    """First path components of the files git tracks (the files and folders a clone has)."""
    try:  # tracked files and new ones that git does not ignore
        listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what is on disk
        return {entry.name for entry in REPO_ROOT.iterdir()} - {".git", ".venv", "data", "results"}
    return {line.split("/")[0] for line in listing.splitlines()}


def path_candidates(code_text: str) -> list[str]:
    """The words of a code text that could be paths: split at blanks and at '=', stripped of
    surrounding punctuation, a test id's '::name' and a ':line' suffix."""
    words = []
    for word in re.split(r"[\s=]+", code_text):
        word = word.strip("\"'(),;[]").split("::")[0]
        word = re.sub(r":\d+$", "", word).rstrip(".:")
        if word and not PLACEHOLDER_CHARACTERS & set(word) and "..." not in word:
            words.append(word)
    return words


def repository_path(word: str, top_level: set[str]) -> bool:
    """A word names a path of this repository (to be checked) when its first component is a
    top-level entry, it is not an example under a folder that runs write into, and it is not a
    dotted module or option."""
    first = word.split("/")[0]
    return (first in top_level and not word.startswith(GENERATED_OUTPUTS)
            and not word.startswith("-") and ("/" in word or "." in first))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, blanks as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets -1, -2, ...)."""
    found, seen = set(), {}
    for line in split_code(text)[0]:
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problem(page: Path, text: str, target: str) -> str | None:
    """What is wrong with a relative link of `page` (whose contents are `text`), if anything."""
    path_part, _, anchor = target.partition("#")
    if not path_part:
        return None if anchor in anchors(text) else f"link to a missing heading: {target}"
    destination = (page.parent / path_part).resolve()
    if not destination.exists():
        return f"link to a missing file: {target}"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination.read_text(encoding="utf-8")):
        return f"link to a missing heading: {target}"
    return None


def doc_problems(page: Path, text: str, top_level: set[str]) -> list[str]:
    """Everything in `text` (the contents of `page`) that does not match the repository."""
    problems = [f"points at {marker!r}, which a clone does not have" for marker in NOT_IN_A_CLONE
                if marker in text]
    prose, code = split_code(text)
    for code_text in code:
        for word in path_candidates(code_text):
            if repository_path(word, top_level) and not (REPO_ROOT / word.rstrip("/")).exists():
                problems.append(f"names a missing path: {word}")
        if BARE_CONFIG.fullmatch(code_text.strip()) and code_text.strip() not in GENERATED_CONFIG_NAMES \
                and not (REPO_ROOT / "run_configs" / code_text.strip()).is_file():
            problems.append(f"names a missing run config: {code_text.strip()}")
        if re.search(r"main\.py\s+-c", code_text) and "--task" not in code_text:
            problems.append(f"a main.py command without --task: {' '.join(code_text.split())}")
    for config in RUN_CONFIG.findall(EXTERNAL_LINK.sub("", text)):
        if not (REPO_ROOT / config).is_file():
            problems.append(f"names a missing run config: {config}")
    for target in LINK.findall(EXTERNAL_LINK.sub("", "\n".join(prose))):
        problem = link_problem(page, text, target)
        if problem:
            problems.append(problem)
    return sorted(set(problems))


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_page_matches_the_repository(page):
    assert doc_problems(page, page.read_text(encoding="utf-8"), top_level_entries()) == []


def test_the_checks_catch_a_missing_path_config_link_heading_and_task():
    page = REPO_ROOT / "docs" / "example.md"
    text = "\n".join([
        "# Example",
        "See `tasks/no_such_tool.py` and `--wts=network/missing_weights.py`, [data](data.md#no-such-heading)",
        "and [gone](nowhere.md); `demo_typo.yaml`; run_configs/absent.yaml; as SPEC §3 says.",
        "```bash",
        "python main.py -c run_configs/demo.yaml --wts \\",
        "    saved_models/demo/last.pth",
        "```",
    ])
    assert doc_problems(page, text, top_level_entries()) == sorted([
        "a main.py command without --task: python main.py -c run_configs/demo.yaml --wts saved_models/demo/last.pth",
        "link to a missing file: nowhere.md",
        "link to a missing heading: data.md#no-such-heading",
        "names a missing path: network/missing_weights.py",
        "names a missing path: tasks/no_such_tool.py",
        "names a missing run config: demo_typo.yaml",
        "names a missing run config: run_configs/absent.yaml",
        "points at 'SPEC §', which a clone does not have",
    ])


def test_what_the_checks_leave_alone():
    """Generated outputs, user files, placeholders, other sites' files and existing paths pass."""
    page = REPO_ROOT / "docs" / "example.md"
    text = "\n".join([
        "# Example",
        "`saved_models/demo/last.pth`, `results/demo/my_video/`, `data/DAVIS/JPEGImages/480p/<sequence>/`,",
        "`my_video.mp4`, `datasets/<source>.py`, `config.yaml`, `tests/unit/repository/test_docs.py::test_x`,",
        "the original's [`utils/Resize.py`](https://github.com/sabarim/3DC-Seg/blob/master/utils/Resize.py),",
        "`model.backbone_weights=saved_models/csn/x.pth`, [Example](#example), [data](data.md#synthetic).",
    ])
    assert doc_problems(page, text, top_level_entries()) == []


def test_readme_commands_are_what_ci_runs():
    """The README's two commands install requirements.txt (the demo) and the system packages with
    requirements-test.txt (the tests); .ci/run runs that test set-up on a clean clone."""
    readme_code = split_code((REPO_ROOT / "README.md").read_text(encoding="utf-8"))[1]
    main_job = [line for line in readme_code if "pip install -r requirements.txt" in line]
    tests = [line for line in readme_code if "pip install -r requirements-test.txt" in line]
    assert main_job and "--task train" in main_job[0] and "--task infer" in main_job[0]
    assert tests and ".ci/install-system-packages" in tests[0] and "python -m pytest" in tests[0]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert ".ci/install-system-packages" in ci and "-r requirements-test.txt" in ci and "-m pytest" in ci
    assert "-r requirements.txt" in (REPO_ROOT / "requirements-test.txt").read_text().splitlines()


def test_some_modules_are_documented():
    assert len(documented_modules()) >= 5


def test_every_command_of_tools_is_listed_with_its_former_names():
    commands = {f"tools.{path.stem}" for path in (REPO_ROOT / "tools").glob("*.py") if path.stem != "__init__"}
    assert commands == COMMAND_NAMES.keys()
    listing = " ".join((REPO_ROOT / "tools" / "__init__.py").read_text().split())
    for command, former_names in COMMAND_NAMES.items():
        assert f"python -m {command} " in listing
        assert all(name in listing for name in former_names)


def test_every_documented_module_is_a_command_or_a_former_name():
    """So the --help tests (tests/e2e/test_documented_modules_answer_help.py) run every documented
    `python -m` line."""
    known = set(COMMAND_NAMES) | {name for names in COMMAND_NAMES.values() for name in names}
    assert set(documented_modules()) <= known
