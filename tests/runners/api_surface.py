"""The API surface manifest check (tests/api.json).

Collects the public operations each binding really has and compares them
with the manifest: a name a binding has that is not listed, or a listed name
a binding lacks, fails. Run with the venv's Python (it imports honker and
loads the extension into its stdlib sqlite3):

    .venv/bin/python tests/runners/api_surface.py path/to/libhonker_ext.so
"""

from __future__ import annotations

import dataclasses
import glob
import inspect
import json
import os
import re
import sqlite3
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LANGS = ("rust", "python", "node", "sql")


def rust_surface() -> set[str]:
    """`Type::method` for every `pub fn` and `pub async fn` in an inherent impl
    of the honker crate (the async API's `_async` twins live in src/aio/)."""
    names = set()
    src = os.path.join(ROOT, "bindings", "rust", "src")
    for path in sorted(glob.glob(os.path.join(src, "**", "*.rs"), recursive=True)):
        current = None
        with open(path) as f:
            for line in f:
                m = re.match(r"^impl(?:<[^>]*>)?\s+(\w+)(?:<[^>]*>)?\s*\{", line)
                if m:
                    current = m.group(1)
                elif line.startswith(("impl", "}")):
                    current = None  # a trait impl, or the end of the block
                elif current and (m := re.match(r"^    pub (?:async )?fn (\w+)", line)):
                    names.add(f"{current}::{m.group(1)}")
    return names


def python_surface() -> set[str]:
    import honker

    names = set()
    for name in honker.__all__:
        obj = getattr(honker, name)
        if inspect.isclass(obj):
            if not issubclass(obj, BaseException):
                # A dataclass field's default is a class attribute: data, not an operation.
                fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
                names |= {
                    f"{name}.{m}"
                    for m, v in vars(obj).items()
                    # __slots__ entries are attributes (data), not operations
                    if not m.startswith("_") and not isinstance(v, types.MemberDescriptorType) and m not in fields
                }
        elif callable(obj):
            names.add(name)
    return names


NODE = """
const h = require(process.argv[1]);
const out = new Set();
for (const [k, v] of Object.entries(h)) {
  if (typeof v !== 'function') continue;
  if (!/^[A-Z]/.test(k)) { out.add(k); continue; }
  if (v === Error || v.prototype instanceof Error) continue;
  for (const m of Object.getOwnPropertyNames(v.prototype)) {
    if (m === 'constructor' || m.startsWith('_') || m === 'next' || m === 'return') continue;
    out.add(`${k}.${m.replace(/Sync$/, '')}`);
  }
  for (const m of Object.getOwnPropertyNames(v)) {
    if (typeof v[m] === 'function' && !m.startsWith('_')) out.add(`${k}.${m}`);
  }
}
console.log(JSON.stringify([...out]));
"""


def node_surface() -> set[str]:
    out = subprocess.run(
        ["node", "-e", NODE, os.path.join(ROOT, "node")], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def sql_surface(ext: str) -> set[str]:
    conn = sqlite3.connect(":memory:")
    conn.enable_load_extension(True)
    conn.load_extension(ext)
    rows = conn.execute("SELECT name FROM pragma_function_list WHERE name LIKE 'honker%' OR name = 'notify'")
    return {r[0] for r in rows}


def main() -> int:
    with open(os.path.join(ROOT, "tests", "api.json")) as f:
        manifest = json.load(f)["operations"]
    surfaces = {
        "rust": rust_surface(),
        "python": python_surface(),
        "node": node_surface(),
        "sql": sql_surface(sys.argv[1]),
    }
    failed = False
    for op in manifest:
        if any(op[lang] is None for lang in LANGS) and not op.get("why"):
            print(f"FAIL manifest: {op['op']} has a null without a `why`")
            failed = True
    for lang in LANGS:
        listed = {name for op in manifest for name in (op[lang] or [])}
        missing = sorted(listed - surfaces[lang])
        unlisted = sorted(surfaces[lang] - listed)
        absent = [op["op"] for op in manifest if op[lang] is None]
        if missing or unlisted:
            failed = True
            if missing:
                print(f"FAIL {lang}: listed in tests/api.json but missing: {', '.join(missing)}")
            if unlisted:
                print(f"FAIL {lang}: public but not in tests/api.json: {', '.join(unlisted)}")
        else:
            print(f"ok   {lang}: {len(surfaces[lang])} names match; no {lang} name for: {', '.join(absent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
