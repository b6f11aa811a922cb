#!/usr/bin/python3
"""Docs that cannot drift (CTest docs_references): in README.md and docs/*.md,

- every `section.key` in code (backticks or a code block) is a key of the schema, as
  `ddp-train --help-config-markdown` lists them (`section.*` and `section.prefix*` match some key);
- every launch/, cluster/, tests/ or build/ path named in code or a link exists (build/: the
  executables CMake makes and the trees the test scripts build into);
- every relative link resolves, #anchors included (GitHub's heading slugs);
- every configs/*.yaml named loads: a training config with `ddp-train --print-config`, a study's
  base config with its overrides, and with each list of overrides it runs (rules, modes, lrs);
- the README stays a five-minute read (at most 250 lines), and every docs page opens with its title
  and a paragraph saying what it covers.

  DDP_TRAIN=build/ddp-train tests/docs/docs_references.py
Every problem is printed with its file and line; the exit code is 1 if there is any."""
import functools
import glob
import os
import re
import subprocess
import sys

import yaml

ROOT = os.environ.get("DDP_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.environ.get("DDP_TRAIN") or os.path.join(ROOT, "build", "ddp-train")
README_MAX_LINES = 250
# `metrics.jsonl` is a file of the run, not the key metrics.jsonl.
FILE_SUFFIXES = {"json", "jsonl", "yaml", "yml", "csv", "md", "png", "txt", "log", "sh", "py", "conf"}
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w.$/~-])((?:launch|cluster|tests|build)/[\w.+/-]*)")
CONFIG = re.compile(r"(?<![\w/-])(configs/[\w.-]+\.ya?ml)")


def pages():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def code_of(text):
    """(line number, code) for every code span and every line of a fenced code block; and the prose
    lines with the code spans left in (for links), each with its line number."""
    code, prose, fenced = [], [], False
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            code.append((number, line))
            continue
        prose.append((number, line))
        code += [(number, m.group(2)) for m in CODE_SPAN.finditer(line)]
    return code, prose


def schema_keys():
    table = subprocess.run([TRAIN, "--help-config-markdown"], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def key_problems(code, keys):
    sections = {k.split(".")[0] for k in keys if "." in k}
    token = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, sorted(sections))) + r")\.(\*|[a-z_][a-z0-9_]*)(\*?)")
    problems = []
    for number, text in code:
        if "unknown key" in text:  # an example of the error a wrong key gets
            continue
        for m in token.finditer(text):
            section, name, star = m.groups()
            if name in FILE_SUFFIXES:
                continue
            key = f"{section}.{name}"
            if name == "*" or star:
                prefix = f"{section}." if name == "*" else key
                if not any(k.startswith(prefix) for k in keys):
                    problems.append((number, f"`{m.group(0)}` matches no key of the schema"))
            elif key not in keys:
                problems.append((number, f"`{key}` is not a key of the schema (ddp-train --help-config-markdown)"))
    return problems


def built_names():
    """What may follow build/: the executables CMake makes, and the trees tests/fuzz/run and
    tests/sanitize/run build into (build/fuzz, build/asan)."""
    names = set()
    for cmake in glob.glob(os.path.join(ROOT, "**", "CMakeLists.txt"), recursive=True):
        if "/build" not in os.path.relpath(cmake, ROOT).join("//"):
            names |= set(re.findall(r"add_executable\(\s*([\w-]+)", open(cmake).read()))
    for script in glob.glob(os.path.join(ROOT, "tests", "*", "run")):
        names |= set(re.findall(r"/build/(\w+)", open(script).read()))
    return names


def path_problems(code, prose, built):
    problems = []
    named = [(n, m.group(1)) for n, text in code for m in PATH.finditer(text)]
    named += [(n, target.split("#")[0]) for n, line in prose for target in LINK.findall(line)
              if PATH.match(target)]
    for number, path in named:
        path = path.rstrip(".,:;")
        if path.startswith("build/"):
            first = path[len("build/"):].split("/")[0]
            if first and first not in built:
                problems.append((number, f"`{path}`: the build makes no {first} (targets: {', '.join(sorted(built))})"))
        elif not os.path.exists(os.path.join(ROOT, path)):
            problems.append((number, f"`{path}` does not exist"))
    return problems


def slug(heading):
    """GitHub's anchor for a heading: its text lower-cased, code and emphasis marks dropped,
    punctuation but hyphens and underscores removed, spaces made hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    found, seen, fenced = set(), {}, False
    for line in open(page).read().split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            s = slug(line.lstrip("#"))
            found.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return found


def link_problems(page, prose):
    problems = []
    for number, line in prose:
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(resolved):
                problems.append((number, f"link ({target}): {os.path.relpath(resolved, ROOT)} does not exist"))
            elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                problems.append((number, f"link ({target}): {os.path.relpath(resolved, ROOT)} has no heading "
                                         f"#{anchor}"))
    return problems


@functools.lru_cache(maxsize=None)
def loaded(config, overrides):
    """ddp-train's one-line error when `config` with the tuple `overrides` does not load, else None."""
    result = subprocess.run([TRAIN, "--print-config", "--config", config, *overrides], cwd=ROOT, capture_output=True,
                            text=True)
    return None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")


def config_problem(name):
    """Why configs/NAME does not load, or None. A study's file (it has a `name`) loads when every
    base config it names loads with its overrides, alone and with each list of overrides it holds."""
    path = os.path.join(ROOT, name)
    if not os.path.exists(path):
        return f"{name} does not exist"
    try:
        document = yaml.safe_load(open(path))
    except yaml.YAMLError as e:
        return f"{name} is not YAML: {e}"
    if not (isinstance(document, dict) and "name" in document):
        return loaded(name, ())
    bases, lists = [], []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("config"), str):
                bases.append((node["config"], list(node.get("overrides") or [])))
            elif isinstance(node.get("overrides"), list):
                lists.append(node["overrides"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    if not bases:
        return f"{name} names no base config (config: configs/...yaml)"
    for config, overrides in bases:
        for extra in [[]] + lists:
            error = loaded(config, tuple(overrides + extra))
            if error:
                return f"{name}: {config} with {' '.join(overrides + extra) or 'no overrides'}: {error}"
    return None


def shape_problems(page, text):
    lines = text.split("\n")
    if page.endswith("README.md"):
        return [] if len(lines) - 1 <= README_MAX_LINES else \
            [(len(lines), f"the README has {len(lines) - 1} lines; keep it to {README_MAX_LINES} (move detail to docs/)")]
    body = [line for line in lines[1:] if line.strip()]
    opening = body[0] if body else ""
    if not lines[0].startswith("# ") or not opening or re.match(r"(#|```|\||- |\* |\d+\. |!\[)", opening):
        return [(1, "a docs page opens with '# Title' and then a paragraph saying what it covers")]
    return []


def main():
    keys, built = schema_keys(), built_names()
    problems, configs = [], {}
    for page in pages():
        text = open(page).read()
        code, prose = code_of(text)
        found = shape_problems(page, text) + key_problems(code, keys) + path_problems(code, prose, built) + \
            link_problems(page, prose)
        problems += [(os.path.relpath(page, ROOT), n, p) for n, p in found]
        for number, line in code + prose:
            for name in CONFIG.findall(line):
                configs.setdefault(name, (os.path.relpath(page, ROOT), number))
    for name, (page, number) in sorted(configs.items()):
        problem = config_problem(name)
        if problem:
            problems.append((page, number, problem))
    for page, number, problem in problems:
        print(f"FAIL: {page}:{number}: {problem}")
    print(f"{len(problems)} problems in {len(pages())} pages ({len(keys)} keys, {len(configs)} configs checked)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
