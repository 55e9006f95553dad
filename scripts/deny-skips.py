#!/usr/bin/env python3
"""Prints the `[bans] skip` entries for the crates that Kefu's dependency graph holds in more
than one version today (every version but the newest), as cargo-deny sees the graph. `make
lint` denies any other duplicate; after a dependency change that adds one on purpose, paste the
output into deny.toml's `skip` list and review the diff."""
import json
import re
import subprocess
import tempfile

config = open("deny.toml").read()
no_skips = re.sub(r"skip = \[\n.*?\n\]\n", "skip = []\n", config, flags=re.S)
with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
    f.write(no_skips)
    f.flush()
    out = subprocess.run(
        ["cargo", "deny", "--offline", "--locked", "--format", "json",
         "--config", f.name, "check", "bans"],
        capture_output=True, text=True,
    ).stderr


def key(v):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.+-]", v)]


dups = {}
for line in out.splitlines():
    try:
        d = json.loads(line)
    except ValueError:
        continue
    f = d.get("fields", {})
    if f.get("code") != "duplicate":
        continue
    for g in f.get("graphs", []):
        name, version = g["Krate"]["name"], g["Krate"]["version"]
        dups.setdefault(name, set()).add(version)
for name in sorted(dups):
    vs = sorted(dups[name], key=key)
    for old in vs[:-1]:
        print(f'  {{ crate = "{name}@{old}", reason = "an older copy a dependency still pulls in; newest {vs[-1]}" }},')
