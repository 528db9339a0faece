"""A small reader for the project's declarative Jenkinsfile: stage names and shell steps.

It understands the subset the Jenkinsfile uses: ``stage('name') { ... }`` blocks, a stage's
``when { expression { params.NAME == 'value' } }`` condition, ``post`` condition blocks, and
``sh '...'`` / ``sh(..., script: '...')`` steps with single-quoted strings. Enough to check the
file's structure and run its shell steps outside Jenkins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

STAGE = re.compile(r"stage\('([^']+)'\)\s*\{")
SH = re.compile(r"\bsh\s*(\(([^)]*?)\bscript:\s*|)'([^']*)'")
POST_CONDITIONS = ("always", "success", "unstable", "failure", "aborted")
WHEN_PARAM = re.compile(
    r"^\s*when\s*\{\s*expression\s*\{\s*params\.(\w+)\s*==\s*'([^']*)'\s*\}\s*\}"
)


@dataclass
class Step:
    script: str
    return_status: bool  # sh(returnStatus: true, ...): Jenkins hands the exit code to Groovy


@dataclass
class Jenkinsfile:
    stages: dict[str, list[Step]] = field(default_factory=dict)
    post: dict[str, list[Step]] = field(default_factory=dict)
    # stage -> (build parameter, value) for stages that run only when that parameter has it
    when: dict[str, tuple[str, str]] = field(default_factory=dict)

    def runs(self, stage: str, build_params: dict[str, str]) -> bool:
        """Whether ``stage`` runs in a build with these parameters."""
        condition = self.when.get(stage)
        return condition is None or build_params.get(condition[0]) == condition[1]


def block_after(text: str, open_brace: int) -> str:
    """The text between the brace at ``open_brace`` and its matching closing brace."""
    depth = 0
    for index in range(open_brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : index]
    raise ValueError("unbalanced braces")


def steps_in(block: str) -> list[Step]:
    return [
        Step(script=m.group(3), return_status="returnStatus: true" in (m.group(2) or ""))
        for m in SH.finditer(block)
    ]


def parse(path: Path) -> Jenkinsfile:
    text = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    result = Jenkinsfile()
    for match in STAGE.finditer(text):
        block = block_after(text, match.end() - 1)
        result.stages[match.group(1)] = steps_in(block)
        when = WHEN_PARAM.match(block)
        if when:
            result.when[match.group(1)] = (when.group(1), when.group(2))
        elif re.search(r"\bwhen\s*\{", block):
            raise ValueError(f"stage {match.group(1)!r}: a `when` this reader cannot evaluate")
    post = re.search(r"\bpost\s*\{", text)
    if post:
        body = block_after(text, post.end() - 1)
        for condition in POST_CONDITIONS:
            found = re.search(rf"\b{condition}\s*\{{", body)
            if found:
                result.post[condition] = steps_in(block_after(body, found.end() - 1))
    return result
