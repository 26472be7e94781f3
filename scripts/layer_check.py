#!/usr/bin/env python3
"""Finds import circles between the modules of the workspace's crates.

Usage: python3 scripts/layer_check.py [REPO_ROOT]

Every workspace member with a `src/lib.rs` or `src/main.rs` is read. Each
path that names a module of the workspace is an import edge: `crate::`,
`super::` and `self::` paths, paths that start with a child module or with a
name that a `use` bound to a module, and `other_crate::` paths into a sibling
crate's library, whether in a `use` (grouped forms included) or inline in
code. A path goes to the deepest module file it names; declaring a child
(`mod x;`) is not an edge. Neither is a path from a module into one of its
own ancestors (`super::Item`, `crate::Item` for the crate root): children
reading their parent's items, while the parent re-exports and uses them, is
how a Rust module is built, not a layer crossing. A parent's path into its
child is an edge.

The graph is checked at two grains: file modules, and top-level modules (the
first segment under a crate, children folded in). Every strongly connected
component with more than one node is printed with one concrete cycle through
it and the line behind each arrow. Exit status: 0 without circles, 1 with
any, 2 when the tree cannot be read.
"""

import bisect
import re
import sys
from collections import defaultdict, deque
from pathlib import Path

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|\S")
RAW_STRING_START = re.compile(r'[bc]?r(#*)"')
ROOT_FILES = ("lib.rs", "main.rs", "mod.rs")


def blank_comments_and_literals(text):
    """Returns text with comments, strings and chars blanked, lines kept.

    Doc comments and string literals (code templates, messages) mention
    paths that are not imports.
    """
    out = list(text)
    n = len(text)

    def blank(start, end):
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        c = text[i]
        prev = text[i - 1] if i else " "
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "bcr" and not (prev.isalnum() or prev == "_") and RAW_STRING_START.match(text, i):
            m = RAW_STRING_START.match(text, i)
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            if text.startswith("\\", i + 1):
                end = text.find("'", i + 3)
                j = n if end < 0 else end + 1
                blank(i, j)
                i = j
            elif i + 2 < n and text[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:  # a lifetime or label
                i += 1
        else:
            i += 1
    return "".join(out)


class Token:
    __slots__ = ("text", "line")

    def __init__(self, text, line):
        self.text = text
        self.line = line


def tokenize(code):
    line_starts = [0] + [m.end() for m in re.finditer("\n", code)]
    return [
        Token(m.group(), bisect.bisect_right(line_starts, m.start()))
        for m in TOKEN.finditer(code)
    ]


class PathRef:
    """One path as written: its segments, the scope it is in, and where."""

    __slots__ = ("segments", "scope", "line", "in_use", "alias")

    def __init__(self, segments, scope, line, in_use, alias=None):
        self.segments = segments
        self.scope = scope
        self.line = line
        self.in_use = in_use
        self.alias = alias


class ParsedFile:
    """The module declarations and paths of one source file.

    Scopes are tuples of inline module names (`mod tests { .. }`) inside the
    file; the file itself is the empty scope.
    """

    def __init__(self, path):
        self.path = path
        self.lines = path.read_text(encoding="utf-8").splitlines()
        self.declared_mods = defaultdict(set)  # scope -> child module names
        self.file_mods = []  # (scope, name) of `mod name;`
        self.paths = []
        self._parse(tokenize(blank_comments_and_literals("\n".join(self.lines))))

    def _parse(self, tokens):
        depth = 0
        scopes = []  # (name, brace depth inside it)
        k = 0
        n = len(tokens)

        def text_at(j):
            return tokens[j].text if j < n else ""

        while k < n:
            t = tokens[k].text
            scope = tuple(name for name, _ in scopes)
            if t == "mod" and IDENT.fullmatch(text_at(k + 1)) and text_at(k + 2) in ("{", ";"):
                name = text_at(k + 1)
                self.declared_mods[scope].add(name)
                if text_at(k + 2) == "{":
                    depth += 1
                    scopes.append((name, depth))
                else:
                    self.file_mods.append((scope, name))
                k += 3
            elif t == "use" and text_at(k - 1) != "::":
                leaves, k = parse_use_tree(tokens, k + 1, [])
                for segments, line, alias in leaves:
                    self.paths.append(PathRef(segments, scope, line, True, alias))
            elif t == "{":
                depth += 1
                k += 1
            elif t == "}":
                if scopes and scopes[-1][1] == depth:
                    scopes.pop()
                depth -= 1
                k += 1
            elif (
                IDENT.fullmatch(t)
                and text_at(k + 1) == "::"
                and text_at(k - 1) not in ("::", "$")
                and not (text_at(k - 1) == "in" and text_at(k - 2) == "(")  # pub(in path)
            ):
                segments = [t]
                line = tokens[k].line
                k += 1
                while text_at(k) == "::" and IDENT.fullmatch(text_at(k + 1)):
                    segments.append(text_at(k + 1))
                    k += 2
                self.paths.append(PathRef(segments, scope, line, False))
            else:
                k += 1


def parse_use_tree(tokens, k, prefix):
    """Expands one use tree into (segments, line, alias) leaves."""
    n = len(tokens)
    segments = list(prefix)
    if k < n and tokens[k].text == "::":
        k += 1
    while k < n:
        t = tokens[k].text
        if t == "{":
            k += 1
            leaves = []
            while k < n and tokens[k].text != "}":
                sub, k = parse_use_tree(tokens, k, segments)
                leaves += sub
                if k < n and tokens[k].text == ",":
                    k += 1
            return leaves, k + 1
        if t == "*":
            return [(segments + ["*"], tokens[k].line, None)], k + 1
        if not IDENT.fullmatch(t):
            return [], k
        segments.append(t)
        line = tokens[k].line
        k += 1
        if k < n and tokens[k].text == "::":
            k += 1
            continue
        alias = None
        if k + 1 < n and tokens[k].text == "as":
            alias = tokens[k + 1].text
            k += 2
        return [(segments, line, alias)], k
    return [], k


class Crate:
    """One crate: its label, its root file and its file modules by path."""

    def __init__(self, label, extern_name, root):
        self.label = label
        self.extern_name = extern_name  # how other crates name it, or None
        self.root = root
        self.modules = {}  # module path tuple -> file
        self.parsed = {}  # file -> ParsedFile
        self._add(root, ())

    def _add(self, file, module):
        self.modules[module] = file
        parsed = ParsedFile(file)
        self.parsed[file] = parsed
        base = file.parent if file.name in ROOT_FILES else file.parent / file.stem
        for scope, name in parsed.file_mods:
            folder = base.joinpath(*scope)
            for candidate in (folder / f"{name}.rs", folder / name / "mod.rs"):
                if candidate.is_file():
                    self._add(candidate, module + scope + (name,))
                    break

    def module_of(self, file):
        for module, f in self.modules.items():
            if f == file:
                return module
        raise KeyError(file)

    def deepest_file(self, module_path):
        best = self.root
        for end in range(1, len(module_path) + 1):
            file = self.modules.get(tuple(module_path[:end]))
            if file is None:
                break
            best = file
        return best


def package_name(manifest):
    in_package = False
    for line in manifest.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_package = stripped == "[package]"
        elif in_package:
            m = re.match(r'name\s*=\s*"([^"]+)"', stripped)
            if m:
                return m.group(1)
    return manifest.parent.name


def workspace_members(repo_root):
    manifest = repo_root / "Cargo.toml"
    if manifest.is_file():
        m = re.search(r"members\s*=\s*\[([^\]]*)\]", manifest.read_text(encoding="utf-8"))
        if m:
            return [repo_root / name for name in re.findall(r'"([^"]+)"', m.group(1))]
    return sorted(p.parent for p in repo_root.glob("*/Cargo.toml"))


def load_crates(repo_root):
    crates = []
    for member in workspace_members(repo_root):
        manifest = member / "Cargo.toml"
        name = package_name(manifest) if manifest.is_file() else member.name
        extern_name = name.replace("-", "_")
        lib = member / "src" / "lib.rs"
        main = member / "src" / "main.rs"
        if lib.is_file():
            crates.append(Crate(extern_name, extern_name, lib))
        if main.is_file():
            crates.append(Crate(f"{extern_name}[bin]", None, main))
    return crates


class Graph:
    """Nodes with import edges; each edge keeps the first line behind it."""

    def __init__(self):
        self.nodes = set()
        self.edges = defaultdict(dict)  # source -> {target: evidence}

    def add_node(self, node):
        self.nodes.add(node)

    def add_edge(self, source, target, evidence):
        if source != target:
            self.edges[source].setdefault(target, evidence)


def build_file_graph(repo_root, crates):
    """Returns (graph of files, {file: (crate, module path)})."""
    by_extern = {c.extern_name: c for c in crates if c.extern_name}
    owner = {}
    for crate in crates:
        for module, file in crate.modules.items():
            owner.setdefault(file, (crate, module))
    graph = Graph()
    for crate in crates:
        for file, parsed in crate.parsed.items():
            graph.add_node(file)
            module = crate.module_of(file)
            aliases = defaultdict(dict)  # scope -> name -> (crate, module path)
            # `use` lines first: they bind the module names code paths use.
            ordered = [p for p in parsed.paths if p.in_use] + [p for p in parsed.paths if not p.in_use]
            for ref in ordered:
                resolved = resolve(ref, crate, module, parsed, aliases, by_extern)
                if resolved is None:
                    continue
                target_crate, target_path = resolved
                target = target_crate.deepest_file(target_path)
                target_module = target_crate.module_of(target)
                if target_crate is crate and module[: len(target_module)] == target_module:
                    continue  # a module reading its ancestors' items
                line = parsed.lines[ref.line - 1].strip()
                rel = file.relative_to(repo_root)
                graph.add_edge(file, target, f"{rel}:{ref.line}: {line}")
                if ref.in_use and tuple(target_path) in target_crate.modules:
                    name = ref.alias or (target_path[-1] if target_path else None)
                    if name and name != "_":
                        aliases[ref.scope][name] = (target_crate, target_path)
    return graph, owner


def resolve(ref, crate, module, parsed, aliases, by_extern):
    """Returns (crate, absolute module path) that ref names, or None."""
    segments = list(ref.segments)
    if ref.in_use and segments and segments[-1] == "self":
        segments.pop()
    if len(segments) < 2 and not ref.in_use:
        return None
    current = list(module) + list(ref.scope)
    first = segments[0]
    if first == "crate":
        return crate, segments[1:]
    if first == "super":
        base = current
        while segments and segments[0] == "super":
            if not base:
                return None
            base = base[:-1]
            segments = segments[1:]
        return crate, base + segments
    if first == "self":
        return crate, current + segments[1:]
    if first in parsed.declared_mods.get(ref.scope, ()):
        return crate, current + segments
    if first in aliases[ref.scope]:
        target_crate, target_path = aliases[ref.scope][first]
        return target_crate, list(target_path) + segments[1:]
    other = by_extern.get(first)
    if other is not None and other is not crate:
        return other, segments[1:]
    return None


def top_level_graph(file_graph, owner):
    def top(file):
        crate, module = owner[file]
        return f"{crate.label}::{module[0] if module else '<root>'}"

    graph = Graph()
    for file in file_graph.nodes:
        graph.add_node(top(file))
    for source, targets in file_graph.edges.items():
        for target, evidence in targets.items():
            graph.add_edge(top(source), top(target), evidence)
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; returns components with >1 node."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph.nodes, key=str):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.edges.get(start, {}), key=str)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.edges.get(succ, {}), key=str))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component, key=str))
    return sorted(found, key=lambda c: [str(n) for n in c])


def shortest_cycle(graph, component):
    """A shortest cycle through the component's first node."""
    members = set(component)
    start = component[0]
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.edges.get(node, {}), key=str):
            if succ not in members:
                continue
            if succ == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return list(reversed(path)) + [start]
            if succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    return [start]


def report(title, graph, name):
    circles = strongly_connected(graph)
    print(f"{title}: {len(graph.nodes)} nodes, {sum(len(t) for t in graph.edges.values())} import edges, "
          f"{len(circles)} circle(s)")
    for number, component in enumerate(circles, 1):
        print(f"  circle {number}: {', '.join(name(n) for n in component)}")
        cycle = shortest_cycle(graph, component)
        print(f"    cycle: {' -> '.join(name(n) for n in cycle)}")
        for source, target in zip(cycle, cycle[1:]):
            print(f"      {name(source)} -> {name(target)}")
            print(f"        {graph.edges[source][target]}")
    return len(circles)


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    repo_root = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parent.parent
    repo_root = repo_root.resolve()
    crates = load_crates(repo_root)
    if not crates:
        print(f"layer check: no crates under {repo_root}", file=sys.stderr)
        return 2
    file_graph, owner = build_file_graph(repo_root, crates)

    def file_name(file):
        return str(file.relative_to(repo_root))

    file_circles = report("file modules", file_graph, file_name)
    top_circles = report("top-level modules", top_level_graph(file_graph, owner), str)
    verdict = "FAIL" if file_circles or top_circles else "ok"
    print(f"layer check {verdict}: {file_circles} circle(s) between file modules, "
          f"{top_circles} between top-level modules ({', '.join(c.label for c in crates)})")
    return 1 if file_circles or top_circles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
