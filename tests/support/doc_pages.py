"""README.md and docs/*.md read as a reader sees their code: fenced blocks and inline code spans,
and the `python -m <module>` commands of this repository that they document."""

import re

from support.paths import REPO_ROOT


DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
EXTERNAL_LINK = re.compile(r"\[[^\]]*\]\((?:https?:|mailto:)[^)]*\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^\s*```")
MODULE_COMMAND = re.compile(r"python -m ([A-Za-z_][\w.]*)")
# every command module of tools/ and the former names that run it (tools/__init__.py lists them)
COMMAND_NAMES = {
    "tools.evaluate": ["inference_handlers.evaluate"],
    "tools.compare": ["inference_handlers.compare", "inference_handlers.report"],
    "tools.benchmark": ["tasks.benchmark"],
    "tools.gpu_report": ["tasks.gpu_report"],
    "tools.export": ["tasks.export"],
    "tools.download": ["tasks.download"],
    "tools.convert_weights": ["checkpoints.convert", "network.convert_weights"],
    "tools.generate_synthetic": ["datasets.synthetic"],
    "tools.fbms": ["datasets.fbms"],
}


def split_code(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, code texts) of a Markdown page: fenced blocks as logical lines (a trailing
    backslash continues the line), inline code spans; links to other sites removed first."""
    text = EXTERNAL_LINK.sub("", text)
    prose, code, in_block, pending = [], [], False, ""
    for line in text.splitlines():
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            pending += line.rstrip("\\") + " "
            if not line.endswith("\\"):
                code.append(pending)
                pending = ""
        else:
            prose.append(line)
            code.extend(INLINE_CODE.findall(line))
    return prose, code


def documented_modules() -> list[str]:
    """Modules of this repository that the pages run as `python -m <module>`."""
    packages = {entry.name for entry in REPO_ROOT.iterdir() if (entry / "__init__.py").is_file()}
    modules = set()
    for page in DOC_FILES:
        for code_text in split_code(page.read_text(encoding="utf-8"))[1]:
            modules.update(name for name in MODULE_COMMAND.findall(code_text) if name.split(".")[0] in packages)
    return sorted(modules)
