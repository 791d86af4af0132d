"""Edit pytest source with ``ast``: list the tests, keep some, merge into a file.

Used on model-written tests: keep only those that passed against the user's code,
then add them to the user's existing test file without disturbing it. Edits cut
and paste whole line ranges taken from the syntax tree (decorators and comment
lines directly above a definition included) rather than regenerating code with
``ast.unparse``, so the formatting and comments of both files survive. Names follow
pytest's default collection rules: ``test*`` functions, and ``test*`` methods of
``Test*`` classes and of ``unittest.TestCase`` subclasses.

All three functions raise ``SyntaxError`` for source that does not parse.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeGuard

_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_IMPORT_LINE_MAX = 88  # a longer extended `from m import ...` line becomes a new statement
_DEF_NAME = re.compile(rb"(?:async\s+)?(?:def|class)\s+")


def test_names(source: str) -> list[str]:
    """Test names in source order, as the sandbox reports them (``test_add``, not the class)."""
    names = []
    for node in ast.parse(source).body:
        if _is_test_function(node):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            names.extend(method.name for method in _test_methods(node))
    return list(dict.fromkeys(names))


def keep_tests(source: str, names: Iterable[str]) -> str:
    """``source`` without the tests not in ``names``; imports, helpers and fixtures stay.

    ``names`` may be node ids or their last part, with or without parameters
    (``test_x[1]`` keeps the whole of ``test_x``). A test class left without tests
    goes as a whole.
    """
    wanted = {_function_name(name) for name in names}
    drop: list[ast.stmt] = []
    for node in ast.parse(source).body:
        if _is_test_function(node) and node.name not in wanted:
            drop.append(node)
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            tests = list(_test_methods(node))
            unwanted = [method for method in tests if method.name not in wanted]
            if tests and len(unwanted) == len(tests):
                drop.append(node)
            else:
                drop.extend(unwanted)
    if not drop:
        return source
    lines = _split_lines(source)
    gone = {index for node in drop for index in _removal(lines, node)}
    kept = [line for index, line in enumerate(lines) if index not in gone]
    while kept and not kept[-1].strip():
        kept.pop()
    text = "".join(kept)
    if kept and not text.endswith(("\n", "\r")):
        text += _newline(source)
    return text


def merge_tests(existing: str, new: str) -> str:
    """``existing`` plus what ``new`` adds: missing imports go into its import block, the
    rest is appended.

    Statements identical to existing ones are skipped. A new test whose name is taken
    becomes ``test_x_2`` (``_3``, ...); a different helper, fixture or import whose
    name is taken is renamed the same way together with its uses in the new code, so
    the existing tests keep what they had.
    """
    old_tree, new_tree = ast.parse(existing), ast.parse(new)
    plan = _plan(old_tree, new_tree, existing, new)
    newline = _newline(existing)
    new_lines = _split_lines(new)
    if plan.renames:
        new_lines = _renamed(new_lines, new_tree, plan.renames)
    merged = "".join(_with_imports(existing, old_tree, plan, newline)).rstrip("\r\n")
    previous: ast.stmt | None = None
    for node in plan.appended:
        start, end = _span(new_lines, node)
        if previous is not None and _follows(new_tree, previous, node):
            after_previous = _span(new_lines, previous)[1]
            gap = "".join(_ending(line, newline) for line in new_lines[after_previous:start])
        else:
            gap = newline * 2
        chunk = "".join(_ending(line, newline) for line in new_lines[start:end])
        merged = f"{merged}{newline}{gap}{chunk}" if merged else chunk
        merged = merged.rstrip("\r\n")
        previous = node
    merged = merged + newline if merged else ""
    ast.parse(merged)  # the pieces fit together: a bug here must not reach the user's file
    return merged


# -- recognising tests -----------------------------------------------------------------


def _is_test_function(node: ast.AST) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _is_test_class(node: ast.ClassDef) -> bool:
    bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
    return node.name.startswith("Test") or any(base.endswith("TestCase") for base in bases)


def _test_methods(node: ast.ClassDef) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for item in node.body:
        if _is_test_function(item):
            yield item


def _function_name(name: str) -> str:
    """``tests/t.py::TestX::test_a[1-2]`` -> ``test_a``."""
    return name.rsplit("::", 1)[-1].split("[", 1)[0]


# -- lines -----------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines as Python's tokenizer counts them (str.splitlines also splits on \\f, \\x1c...)."""
    return _LINE.findall(text)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _ending(line: str, newline: str) -> str:
    body = line.rstrip("\r\n")
    return body + newline if body != line else line


def _span(lines: list[str], node: ast.stmt) -> tuple[int, int]:
    """0-based [start, end) of ``node`` with its decorators and the comments right above."""
    start = node.lineno
    if isinstance(node, _Definition) and node.decorator_list:
        start = min(start, *(decorator.lineno for decorator in node.decorator_list))
    start -= 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return start, node.end_lineno or node.lineno


def _removal(lines: list[str], node: ast.stmt) -> range:
    """Lines to delete with ``node``: it and the blank lines before it, so the spacing
    before what follows stays as it was; the blank lines after it if it opens a block."""
    start, end = _span(lines, node)
    before = start
    while before > 0 and not lines[before - 1].strip():
        before -= 1
    if before < start:
        return range(before, end)
    after = end
    while after < len(lines) and not lines[after].strip():
        after += 1
    return range(start, after)


# -- merging ---------------------------------------------------------------------------


@dataclass
class _Plan:
    imports: list[str] = field(default_factory=list)  # import statements to add
    futures: list[str] = field(default_factory=list)  # `from __future__` ones: they go first
    appended: list[ast.stmt] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)  # in the new code
    rewrites: dict[int, str] = field(default_factory=dict)  # existing import lines extended


def _plan(old_tree: ast.Module, new_tree: ast.Module, existing: str, new: str) -> _Plan:
    plan = _Plan()
    old_lines = _split_lines(existing)
    extendable = _extendable_imports(old_tree, old_lines)
    extensions: dict[int, list[ast.alias]] = {}
    bound = _bindings(old_tree)
    present = {key for node in old_tree.body for key in _import_keys(node)}
    old_statements = {ast.dump(node) for node in old_tree.body}
    taken = _identifiers(old_tree) | _identifiers(new_tree)

    def rename(name: str) -> str:
        number = 2
        while f"{name}_{number}" in taken:
            number += 1
        plan.renames[name] = f"{name}_{number}"
        taken.add(plan.renames[name])
        return plan.renames[name]

    for index, node in enumerate(new_tree.body):
        if index == 0 and _is_docstring(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            aliases = []
            binds = _bindings(ast.Module(body=[node], type_ignores=[]))
            for alias, key in zip(node.names, _import_keys(node), strict=True):
                if key in present:
                    continue
                present.add(key)
                as_name = alias.asname or alias.name.split(".", 1)[0]
                # `import a.b` cannot be renamed without rewriting `a.b.x`; it binds `a` anyway.
                renamable = alias.asname is not None or "." not in alias.name
                if as_name in bound and bound[as_name] != binds[as_name] and renamable:
                    aliases.append(ast.alias(alias.name, rename(as_name)))
                else:
                    aliases.append(alias)
            target = None
            if isinstance(node, ast.ImportFrom) and all(a in node.names for a in aliases):
                target = extendable.get((node.level, node.module))
            if aliases and target is not None:
                extensions.setdefault(target.lineno, []).extend(aliases)
            elif aliases:
                text = _import_text(node, aliases, new)
                future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
                (plan.futures if future else plan.imports).append(text)
            continue
        name = _bound_name(node)
        if name is None:
            if ast.dump(node) not in old_statements:
                plan.appended.append(node)
        elif name not in bound:
            plan.appended.append(node)
        elif bound[name] != ast.dump(node):
            rename(name)
            plan.appended.append(node)
    for lineno, added in extensions.items():
        target = next(n for n in extendable.values() if n.lineno == lineno)
        combined = ast.ImportFrom(target.module, [*target.names, *added], target.level)
        line = ast.unparse(combined)
        if len(line) <= _IMPORT_LINE_MAX:
            old = old_lines[lineno - 1]
            plan.rewrites[lineno - 1] = line + old[len(old.rstrip("\r\n")) :]
        else:
            plan.imports.append(ast.unparse(ast.ImportFrom(target.module, added, target.level)))
    return plan


def _extendable_imports(
    tree: ast.Module, lines: list[str]
) -> dict[tuple[int, str | None], ast.ImportFrom]:
    """Existing one-line ``from m import a`` statements (no comment after them) by module,
    which a new name from the same module can join rather than add a line."""
    found: dict[tuple[int, str | None], ast.ImportFrom] = {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        line = lines[node.lineno - 1].encode()
        rest = line[node.end_col_offset or 0 :].strip()
        star = any(alias.name == "*" for alias in node.names)
        if node.lineno == node.end_lineno and not rest and not star:
            found.setdefault((node.level, node.module), node)
    return found


def _import_text(node: ast.Import | ast.ImportFrom, aliases: list[ast.alias], new: str) -> str:
    """The statement as the new code wrote it when it is added whole, else rebuilt."""
    if aliases == node.names:
        segment = ast.get_source_segment(new, node)
        if segment:
            return segment
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=aliases))
    return ast.unparse(ast.ImportFrom(module=node.module, names=aliases, level=node.level))


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _bound_name(node: ast.stmt) -> str | None:
    """The one name a top-level definition or simple assignment binds."""
    if isinstance(node, _Definition):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _bindings(tree: ast.Module) -> dict[str, str]:
    """Top-level name -> what binds it; an import by what it imports, so that two imports
    of the same thing agree."""
    bound: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = f"import {alias.name}"
                else:
                    top = alias.name.split(".", 1)[0]
                    bound[top] = f"import {top}"
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                bound[alias.asname or alias.name] = f"from {module} import {alias.name}"
        elif (name := _bound_name(node)) is not None:
            bound[name] = ast.dump(node)
    return bound


def _import_keys(node: ast.stmt) -> list[tuple[object, ...]]:
    if isinstance(node, ast.Import):
        return [("import", alias.name, alias.asname) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [("from", node.level, node.module, a.name, a.asname) for a in node.names]
    return []


def _identifiers(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, _Definition):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".", 1)[0])
    return names


def _follows(tree: ast.Module, previous: ast.stmt, node: ast.stmt) -> bool:
    """Whether ``node`` comes right after ``previous`` in ``tree``'s top level."""
    body = tree.body
    return any(a is previous and b is node for a, b in pairwise(body))


def _renamed(lines: list[str], tree: ast.Module, renames: dict[str, str]) -> list[str]:
    """``lines`` with every binding and use of the renamed names renamed.

    Positions come from the tree (UTF-8 byte columns); an edit whose bytes are not the
    old name (f-string positions before Python 3.12) is left out rather than guessed.
    """
    edits: dict[int, list[tuple[int, str, str]]] = {}
    encoded = [line.encode() for line in lines]
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in renames:
            edits.setdefault(node.lineno - 1, []).append(
                (node.col_offset, node.id, renames[node.id])
            )
        elif isinstance(node, ast.arg) and node.arg in renames:
            edits.setdefault(node.lineno - 1, []).append(
                (node.col_offset, node.arg, renames[node.arg])
            )
        elif isinstance(node, _Definition) and node.name in renames:
            keyword = _DEF_NAME.match(encoded[node.lineno - 1], node.col_offset)
            if keyword is not None:
                edits.setdefault(node.lineno - 1, []).append(
                    (keyword.end(), node.name, renames[node.name])
                )
    result = list(lines)
    for index, changes in edits.items():
        line = encoded[index]
        for column, old, new in sorted(changes, reverse=True):
            old_bytes = old.encode()
            if line[column : column + len(old_bytes)] == old_bytes:
                line = line[:column] + new.encode() + line[column + len(old_bytes) :]
        result[index] = line.decode()
    return result


def _with_imports(existing: str, tree: ast.Module, plan: _Plan, newline: str) -> list[str]:
    """``existing``'s lines with the plan's imports: ``__future__`` ones before the first
    statement, the others at the end of the leading import block (or where it would be)."""
    lines = _split_lines(existing)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    for index, text in plan.rewrites.items():
        lines[index] = text
    body = tree.body[1:] if tree.body and _is_docstring(tree.body[0]) else tree.body
    first = body[0].lineno - 1 if body else len(lines)
    block_end = None
    for node in body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            break
        block_end = node.end_lineno
    inserts: list[tuple[int, list[str]]] = []
    if plan.imports:
        added = [text + newline for text in plan.imports]
        if block_end is not None:
            inserts.append((block_end, added))
        elif body:
            inserts.append((first, [*added, newline, newline]))
        else:
            inserts.append((first, [newline, *added] if lines else added))
    if plan.futures:  # after the imports in this list: at the same position it lands first
        inserts.append((first, [text + newline for text in plan.futures]))
    for position, added in sorted(inserts, key=lambda item: item[0], reverse=True):
        lines[position:position] = added
    return lines
