"""Read Pulumi project and stack files the way the Pulumi CLI does, into plain JSON-able values.

The CLI reads `Pulumi.<stack>.yaml` with Go's yaml package and hands the program every config
value as a string: a top-level scalar exactly as written (`2024-01-02` stays that text, `1.30`
stays `1.30`; booleans are passed as true/false, which Pulumi's SDKs read however they are
spelt), anything structured as JSON, in which Go yaml turns a timestamp into its text too
("for backward compatibility", decode.go). PyYAML instead builds datetime, bytes and set objects
that JSON cannot hold, recurses until Python's limit on deep nesting, and takes the last of two
equal keys; so this module walks PyYAML's node graph itself and builds only str, int, float, bool,
None, list and dict. What no config value can be is refused with the key named, one line each:
`!!binary`, `!!set` and other tags, recursive aliases, keys given twice, NaN and infinities,
control characters, nesting deeper than MAX_DEPTH, aliases expanding to more than MAX_VALUES.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Optional

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from settings.base import shown

#: Deeper than any real config (the deepest stack key, a pod anti-affinity term's label, is 8).
MAX_DEPTH = 32
#: Values one file may expand to through aliases; Go yaml refuses "excessive aliasing" similarly.
MAX_VALUES = 100_000

_TAG = "tag:yaml.org,2002:"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Path = tuple[Any, ...]


class YamlError(ValueError):
    """A YAML file holds something no Pulumi config can; `problems` has one line per offending key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def render_path(path: Path) -> str:
    """`config`, `scaleplane:todo`, `placement`, 0 -> `scaleplane:todo.placement[0]` (the key a user types)."""
    parts = list(path[1:] if path and path[0] == "config" and len(path) > 1 else path)
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + shown(str(part), quote=False)
    return shown(text, quote=False) if text else "(top level)"


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class _PathTracker:
    """Follows a YAML event stream and knows the key path of the node each event starts."""

    def __init__(self) -> None:
        # Each open collection: [is_mapping, its path, current key or next index, expecting a key]
        self.frames: list[list[Any]] = []

    def _node_path(self) -> Optional[Path]:
        """The path of the node about to start, or None when it is a mapping key."""
        if not self.frames:
            return ()
        is_mapping, path, slot, expecting_key = self.frames[-1]
        if is_mapping and expecting_key:
            return None
        return (*path, slot)

    def _completed(self) -> None:
        if self.frames:
            frame = self.frames[-1]
            if frame[0]:
                frame[3] = True
            else:
                frame[2] += 1

    def feed(self, event: yaml.Event) -> Optional[Path]:
        """Take one event; return the path of the node it starts (None for keys and ends)."""
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            path = self._node_path()
            if path is None:  # a collection used as a mapping key
                path = (*self.frames[-1][1], "?")
                self.frames[-1][2], self.frames[-1][3] = "?", False
            is_mapping = isinstance(event, yaml.MappingStartEvent)
            self.frames.append([is_mapping, path, None if is_mapping else 0, True])
            return path
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.frames.pop()
            self._completed()
            return None
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            path = self._node_path()
            if path is None:
                self.frames[-1][2] = getattr(event, "value", None) or "?"
                self.frames[-1][3] = False
                return None
            self._completed()
            return path
        return None

    @property
    def current(self) -> Path:
        """The path of the innermost open collection (and its pending key)."""
        if not self.frames:
            return ()
        is_mapping, path, slot, expecting_key = self.frames[-1]
        return path if (is_mapping and expecting_key) or slot is None else (*path, slot)


def _sanitized(text: str) -> str:
    return _CONTROL.sub("?", text).replace("\ufffd", "?")


def _path_at(text: str, index: int) -> Optional[Path]:
    """The key path of the deepest node spanning `index`, parsing as far as the text allows."""
    tracker = _PathTracker()
    best: Optional[Path] = None
    try:
        for event in yaml.parse(_sanitized(text), Loader=yaml.SafeLoader):
            if event.start_mark.index > index:
                break
            path = tracker.feed(event)
            if path is not None and event.start_mark.index <= index <= event.end_mark.index:
                best = path
            elif best is None or len(tracker.current) > len(best):
                best = tracker.current if event.start_mark.index <= index else best
    except yaml.YAMLError:
        pass
    return best if best else None


def _located(where: str, text: str, index: int, problem: str) -> str:
    line, column = _line_column(text, index)
    path = _path_at(text, index)
    key = f", in {render_path(path)}" if path else ""
    return f"{where} is not valid YAML (line {line}, column {column}{key}): {problem}"


def _refusal(where: str, text: str, error: yaml.YAMLError) -> YamlError:
    """A PyYAML error as one located line, naming the key it happened in."""
    if isinstance(error, yaml.reader.ReaderError):
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        return YamlError([_located(where, text, error.position, f"the character {character} is not allowed")])
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or "invalid YAML"
    if mark is None:
        return YamlError([f"{where} is not valid YAML: {problem}"])
    return YamlError([_located(where, text, mark.index, problem)])


def _check_structure(text: str, where: str) -> None:
    """Parse the event stream once: syntax errors and too-deep nesting, located and keyed."""
    tracker = _PathTracker()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            path = tracker.feed(event)
            if len(tracker.frames) > MAX_DEPTH:
                shown_path = render_path(path if path is not None else tracker.current)
                line, _ = _line_column(text, event.start_mark.index)
                raise YamlError([f"{shown_path}: nested more than {MAX_DEPTH} levels deep (line {line})"])
    except yaml.YAMLError as error:
        raise _refusal(where, text, error) from None


class _Builder:
    """Turns a composed node graph into plain values, collecting one problem per offending key."""

    def __init__(self, keep_text: Callable[[Path], bool]):
        self.keep_text = keep_text
        self.constructor = SafeConstructor()
        self.problems: list[str] = []
        self.values = 0

    def problem(self, path: Path, node: Node, message: str) -> None:
        self.problems.append(f"{render_path(path)}: {message} (line {node.start_mark.line + 1})")

    def build(self, node: Node, path: Path, active: frozenset[int]) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlError([f"{render_path(path[:2])}: aliases expand to more than {MAX_VALUES} values"])
        if len(path) > MAX_DEPTH:
            raise YamlError([f"{render_path(path)}: nested more than {MAX_DEPTH} levels deep (through aliases)"])
        if id(node) in active:
            self.problem(path, node, "a recursive alias: the value contains itself")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.problem(path, node, f"YAML tag {_short(node.tag)} is not a config value; write a plain list")
                return None
            return [self.build(item, (*path, index), inner) for index, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if node.tag != _TAG + "map":
            self.problem(path, node, f"YAML tag {_short(node.tag)} is not a config value; write a plain mapping")
            return None
        return self.mapping(node, path, inner)

    def mapping(self, node: MappingNode, path: Path, active: frozenset[int]) -> Optional[dict[str, Any]]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _TAG + "merge":
                key = key_node.value
                if key in seen:
                    self.problem((*path, key), key_node, f"given twice (first at line {seen[key]}): say it once")
                seen.setdefault(key, key_node.start_mark.line + 1)
        try:
            self.constructor.flatten_mapping(node)
        except yaml.constructor.ConstructorError as error:
            self.problem(path, node, f"a bad merge key (<<): {error.problem}")
            return None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(path, key_node, "a mapping key must be plain text, not a list or mapping")
                continue
            key = key_node.value
            if _CONTROL.search(key):
                self.problem((*path, key), key_node, "the key holds a control character")
                continue
            result[key] = self.build(value_node, (*path, key), active)
        return result

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag = node.tag.removeprefix(_TAG)
        if tag == "binary" or not node.tag.startswith(_TAG) or tag not in _SCALARS:
            self.problem(path, node, f"YAML tag {_short(node.tag)} is not a config value; write a plain string")
            return None
        if tag in ("str", "timestamp") or (self.keep_text(path) and tag in ("int", "float")):
            if _CONTROL.search(node.value):
                self.problem(path, node, f"holds a control character: {shown(node.value)}")
                return None
            return node.value
        if tag == "null":
            return "" if self.keep_text(path) else None
        value = _SCALARS[tag](self.constructor, node)
        if isinstance(value, bool) and self.keep_text(path):
            return "true" if value else "false"  # what Pulumi's SDKs read as a boolean, however spelt
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(path, node, f"{node.value} is not a number a config value can hold")
            return None
        return value


_SCALARS: dict[str, Callable[[SafeConstructor, ScalarNode], Any]] = {
    "str": SafeConstructor.construct_yaml_str,
    "timestamp": SafeConstructor.construct_yaml_str,
    "null": SafeConstructor.construct_yaml_null,
    "bool": SafeConstructor.construct_yaml_bool,
    "int": SafeConstructor.construct_yaml_int,
    "float": SafeConstructor.construct_yaml_float,
}


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def load(data: bytes, where: str, keep_text: Callable[[Path], bool] = lambda path: False) -> Any:
    """The one YAML document in `data`, as plain values; scalars at paths `keep_text` names stay as written.

    Raises YamlError naming each offending key (or line, for text that is not YAML).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        good = data[: error.start].decode("utf-8")
        line, column = _line_column(good, len(good))
        path = _path_at(good + "?", len(good))
        key = f", in {render_path(path)}" if path else ""
        problem = f"byte 0x{data[error.start]:02x} is not UTF-8"
        raise YamlError([f"{where} is not valid YAML (line {line}, column {column}{key}): {problem}"]) from None
    text = text.removeprefix("\ufeff")
    _check_structure(text, where)
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:  # e.g. an alias to an anchor never defined
        raise _refusal(where, text, error) from None
    if len(nodes) > 1:
        raise YamlError([f"{where}: holds {len(nodes)} YAML documents; a Pulumi file is one"])
    if not nodes:
        return None
    builder = _Builder(keep_text)
    document = builder.build(nodes[0], (), frozenset())
    if builder.problems:
        raise YamlError(builder.problems)
    return document
