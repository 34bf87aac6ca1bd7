"""A small Dockerfile reader: enough to check the image's stages and replay their steps on a host.

Handles line continuations, comments, parser directives, ``ARG`` defaults (substituted into ``FROM``),
``FROM image AS name`` stages and JSON (exec) forms. It does not try to be BuildKit.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV, ...
    value: str  # the rest of the logical line, continuations joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``CMD ["a", "b"]``), or None for the shell form."""
        text = self.value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return None
            if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
                return parsed
        return None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self, inherited: dict[str, str] | None = None) -> dict[str, str]:
        """ENV values in order, each able to refer to earlier ones (``PATH=/x:$PATH``)."""
        values = dict(inherited or {})
        for instruction in self.all("ENV"):
            values.update(parse_env(instruction.value, values))
        return values


@dataclass
class Dockerfile:
    args: dict[str, str]  # global ARGs (before the first FROM) with their defaults
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        names = {s.name: s for s in self.stages if s.name}
        chain = [stage]
        while chain[0].base in names:
            chain.insert(0, names[chain[0].base])
        return chain


def substitute(text: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_env(value: str, context: dict[str, str]) -> dict[str, str]:
    """``ENV A=1 B="two words"`` (or legacy ``ENV A 1``) with ``$VAR`` expanded from ``context``."""
    tokens = shlex.split(value, posix=True)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: substitute(" ".join(tokens[1:]), context)}
    parsed: dict[str, str] = {}
    for token in tokens:
        key, _, raw = token.partition("=")
        parsed[key] = substitute(raw, {**context, **parsed})
    return parsed


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines (keeping ``# hadolint`` out too)."""
    lines: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        lines.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        lines.append((start, " ".join(buffer)))
    return lines


def parse(path: Path, build_args: dict[str, str] | None = None) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(Path(path).read_text()):
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword == "ARG" and not stages:
            name, _, default = value.partition("=")
            args[name] = default.strip().strip('"')
            continue
        if keyword == "FROM":
            resolved = substitute(value, {**args, **(build_args or {})})
            words = resolved.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if not stages:
            raise ValueError(f"{path}:{number}: {keyword} before the first FROM")
        stages[-1].instructions.append(Instruction(keyword, value, number))
    if build_args:
        args.update(build_args)
    return Dockerfile(args=args, stages=stages)
