"""The ``recai`` command line.

The kernel's commands: ``plugins``, ``datasets`` (list, ``stats NAME``), ``recipe check|schema``,
``run``. Plugins add theirs through the ``recai_commands()`` hook (:mod:`recai.commands`):
``recai eval`` comes with recai-eval, ``recai serve`` with recai-serve, ``recai emb`` with
recai-emb. ``recai --help`` lists them with their distribution from the specs alone; only the
command that runs is imported.

Exit codes: 0 success; 2 a user error (bad recipe, unknown name, bad file, bad arguments) with a
readable message and no traceback; 1 an internal failure, reported with the plugin (and its
distribution) whose code failed, or as recai's own (the traceback is shown with ``--debug``).

Only argparse is imported at start, so ``recai --help`` answers at once; everything else is
imported by the command that needs it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from ._version import __version__

__all__ = ["main"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    reg = pm.registry()
    components: list[dict[str, Any]] = [
        {
            "name": c.name,
            "roles": [r.value for r in c.roles],
            "summary": c.summary,
            "plugin": c.plugin.name,
            "distribution": c.plugin.distribution,
            "version": c.plugin.version,
        }
        for c in reg.all()
    ]
    dists: dict[str, dict[str, Any]] = {}
    for p in pm.plugins.values():
        key = p.distribution or f"(plugin {p.name})"
        d = dists.setdefault(
            key, {"name": p.distribution, "version": p.version, "plugins": [], "components": 0}
        )
        d["plugins"].append(p.name)
    for c in components:
        key = c["distribution"] or f"(plugin {c['plugin']})"
        if key in dists:
            dists[key]["components"] += 1
    conflicts = [
        {"name": name, "providers": [e.plugin.label for e in entries]}
        for name, entries in sorted(reg.conflicts.items())
    ]
    table = pm.commands()
    commands = [
        {
            "name": c.name,
            "summary": c.summary,
            "plugin": c.plugin.name,
            "distribution": c.plugin.distribution,
            "version": c.plugin.version,
        }
        for c in (table.commands[n] for n in sorted(table.commands))
    ]
    command_conflicts = [
        {"name": name, "providers": [c.plugin.label for c in claims]}
        for name, claims in sorted(table.conflicts.items())
    ]
    failures = [
        {
            "plugin": f.plugin,
            "distribution": f.distribution,
            "version": f.version,
            "reason": f.reason,
        }
        for f in pm.failures
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "recai_version": __version__,
                    "distributions": list(dists.values()),
                    "components": components,
                    "commands": commands,
                    "conflicts": conflicts,
                    "command_conflicts": command_conflicts,
                    "failures": failures,
                },
                indent=2,
            )
        )
        return 0
    from .roles import Role

    out = [f"recai {__version__}: {len(dists)} distribution(s), {len(components)} component(s)", ""]
    out.append(
        _table(
            ["distribution", "version", "plugins", "components"],
            [
                [d["name"] or k, d["version"] or "-", ", ".join(d["plugins"]), str(d["components"])]
                for k, d in dists.items()
            ],
        )
    )
    for role in Role:
        rows = [[c.name, c.plugin.label, c.summary] for c in reg.all(role)]
        if rows:
            out += ["", f"{role.plural}:"]
            out.append(_table(["name", "provided by", "summary"], rows, indent="  "))
    if commands:
        rows = [
            [f"recai {c['name']}", table.commands[c["name"]].plugin.label, c["summary"]]
            for c in commands
        ]
        out += ["", "Commands:", _table(["command", "provided by", "summary"], rows, indent="  ")]
    if conflicts or command_conflicts or failures:
        out += ["", "Problems:"]
        out += [
            f"  - name {c['name']!r} is registered by: {', '.join(c['providers'])}"
            for c in conflicts
        ]
        out += [
            f"  - command {c['name']!r} is provided by: {', '.join(c['providers'])}"
            for c in command_conflicts
        ]
        out += [f"  - {f}" for f in pm.failures]
    print("\n".join(out))
    return 0


def _table(header: list[str], rows: list[list[str]], indent: str = "") -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append(indent + "  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        )
    return "\n".join(lines)


def _cmd_check(args: argparse.Namespace) -> int:
    from .plugins import get_plugin_manager
    from .recipe import check, load_recipe

    recipe = load_recipe(args.file)
    plan = check(recipe, get_plugin_manager().registry())
    print(
        f"{recipe.source}: OK — {len(plan.order)} component(s), build order: {', '.join(plan.order)}"
    )
    if plan.stages:
        print(f"stages: {', '.join(plan.stages)}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_plugin_manager
    from .schema import recipe_schema

    if args.out is not None:
        _check_out(args.out, "--out", want="file")
    schema = recipe_schema(None if args.shape_only else get_plugin_manager().registry())
    text = json.dumps(schema, indent=2) + "\n"
    if args.out is not None:
        from .errors import RecaiError
        from .runtime import atomic_write_text

        try:
            atomic_write_text(args.out, text)
        except OSError as e:
            raise RecaiError(
                f"--out {args.out}: cannot write the schema there: {e.strerror or e}"
            ) from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .recipe import load_recipe
    from .runtime import run

    if args.out is not None:
        _check_out(args.out, "--out", want="folder")
    recipe = load_recipe(args.file)
    result = run(
        recipe,
        args.out,
        resume=not args.fresh,
        progress=not args.no_progress,
        stages=args.stage,
    )
    print(result.to_markdown())
    if result.resumed:
        print(
            f"(resumed from earlier results: {', '.join(result.resumed)}; use --fresh to run them again)"
        )
    print(f"wrote {result.metrics_path} and {result.report_path}")
    return 0


def _check_out(value: str, option: str, *, want: str) -> None:
    """Refuse an output path that cannot be what ``want`` says (``"folder"`` or ``"file"``)
    before any work is done: an empty path (it is not the current folder), a NUL character, a
    file where a folder is wanted, a folder, device or FIFO where a file is wanted."""
    import os
    import stat

    from .errors import RecaiError

    def refuse(why: str) -> NoReturn:
        raise RecaiError(f"{option} {value!r}: {why}")

    if not value.strip():
        refuse(
            f"the path is empty; name a {want}" + (" (. for this one)" if want == "folder" else "")
        )
    if "\0" in value:
        refuse("the path contains a NUL character")
    try:
        mode = os.stat(value).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the writer names what is in the way
        return
    except OSError as e:
        refuse(f"cannot use the path: {e.strerror or e}")
    if want == "folder" and not stat.S_ISDIR(mode):
        kind = "a file" if stat.S_ISREG(mode) else "a device, FIFO or socket"
        refuse(f"is {kind}, not a folder; name a folder for the results (created if missing)")
    if want == "file" and stat.S_ISDIR(mode):
        refuse("is a folder; name a file to write")
    if want == "file" and not stat.S_ISREG(mode):
        refuse("is not a regular file (a device, FIFO or socket); name a file to write")


def _cmd_datasets(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_plugin_manager
    from .roles import Role

    reg = get_plugin_manager().registry()
    entries = reg.all(Role.DATASET)
    if args.json:
        rows = [
            {
                "name": e.name,
                "summary": e.summary,
                "plugin": e.plugin.name,
                "distribution": e.plugin.distribution,
                "version": e.plugin.version,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{len(entries)} dataset component(s); details: recai datasets stats NAME --param key=value"
    )
    print()
    print(
        _table(
            ["name", "provided by", "summary"],
            [[e.name, e.plugin.label, e.summary] for e in entries],
        )
    )
    return 0


def _cmd_datasets_stats(args: argparse.Namespace) -> int:
    import json

    from .commands import parse_params
    from .plugins import get_plugin_manager
    from .roles import Role

    params = parse_params(args.param, example="path=data/ml-1m")
    source = get_plugin_manager().create(Role.DATASET, args.name, **params)
    summary = _dataset_summary(source.dataset())
    summary = {"component": args.name, "params": params, **summary}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print("\n".join(_format_summary(summary)))
    return 0


def _dataset_summary(data: Any) -> dict[str, Any]:
    """The numbers ``recai datasets stats`` prints, as plain JSON-able values."""
    import numpy as np

    inter = data.interactions
    n = len(inter)
    counts = inter.user_counts()
    out: dict[str, Any] = {
        "name": data.name,
        "users": int(data.n_users),
        "items": int(data.n_items),
        "interactions": int(n),
        "density": n / max(1, data.n_users * data.n_items),
        "interactions_per_user": {
            "min": int(counts.min()) if n else 0,
            "median": float(np.median(counts)) if n else 0.0,
            "max": int(counts.max()) if n else 0,
        },
        "items_with_interactions": int((inter.item_counts() > 0).sum()),
        "ratings": None,
        "time": None,
        "item_fields": list(data.catalog.fields),
        "user_fields": list(data.user_fields),
        "kg": None,
    }
    if inter.ratings is not None and n:
        r = inter.ratings
        out["ratings"] = {"min": float(r.min()), "max": float(r.max()), "mean": float(r.mean())}
    if inter.timestamps is not None and n:
        lo, hi = inter.timestamps.min(), inter.timestamps.max()
        out["time"] = {"first": float(lo), "last": float(hi)}
        if lo >= 1e8 and hi < 4e9:  # looks like Unix seconds (1973..2096): say the days too
            import datetime as dt

            def day(t: Any) -> str:
                return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d")

            out["time"].update({"first_date": day(lo), "last_date": day(hi)})
    if data.kg is not None:
        kg = data.kg
        out["kg"] = {
            "triples": len(kg),
            "entities": int(kg.n_entities),
            "relations": int(kg.n_relations),
            "linked_items": int((kg.item_entity >= 0).sum()),
        }
    for key in ("skipped", "unparsed", "source", "files", "licence", "citation"):
        if key in data.info:
            out[key] = data.info[key]
    return out


def _format_summary(s: dict[str, Any]) -> list[str]:
    per = s["interactions_per_user"]
    rows = [
        ("users", f"{s['users']:,}"),
        ("items", f"{s['items']:,} ({s['items_with_interactions']:,} with interactions)"),
        ("interactions", f"{s['interactions']:,}"),
        ("density", f"{s['density']:.4%}"),
        ("per user", f"min {per['min']:,}, median {per['median']:g}, max {per['max']:,}"),
    ]
    if s["ratings"]:
        r = s["ratings"]
        rows.append(("ratings", f"{r['min']:g} .. {r['max']:g} (mean {r['mean']:.2f})"))
    t = s["time"]
    if t is None:
        rows.append(("time", "no timestamps (file order)"))
    elif "first_date" in t:
        rows.append(("time", f"{t['first_date']} .. {t['last_date']} (UTC)"))
    else:
        rows.append(("time", f"{t['first']:g} .. {t['last']:g}"))
    rows.append(("item fields", ", ".join(s["item_fields"]) or "-"))
    rows.append(("user fields", ", ".join(s["user_fields"]) or "-"))
    kg = s["kg"]
    rows.append(
        (
            "knowledge graph",
            f"{kg['triples']:,} triples, {kg['entities']:,} entities, {kg['relations']:,} relations, "
            f"{kg['linked_items']:,} linked items"
            if kg
            else "-",
        )
    )
    skipped = s.get("skipped") or {}
    rows.append(("skipped", ", ".join(f"{v:,} {k}" for k, v in skipped.items()) or "nothing"))
    unparsed = {k: v for k, v in (s.get("unparsed") or {}).items() if v}
    if unparsed:
        rows.append(("unreadable values", ", ".join(f"{v:,} {k}" for k, v in unparsed.items())))
    for key in ("source", "licence"):
        if s.get(key):
            rows.append((key, str(s[key])))
    width = max(len(k) for k, _ in rows)
    return [f"{s['component']} ({s['name']})"] + [f"  {k.ljust(width)}  {v}" for k, v in rows]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 2 with a one-line hint, as argparse does
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="recai",
        description="recai: recommender systems from LLMs and classic models, built from recipes.",
    )
    p.add_argument("--version", action="version", version=f"recai {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for every error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sp = sub.add_parser("plugins", help="list installed plugins and their components")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=_cmd_plugins)

    rp = sub.add_parser("recipe", help="check a recipe or print the recipe JSON schema")
    rsub = rp.add_subparsers(dest="recipe_command", metavar="ACTION", parser_class=_Parser)
    cp = rsub.add_parser("check", help="check a recipe file (both passes) without running it")
    cp.add_argument("file", help="recipe file (.toml, .yaml, .yml or .json)")
    cp.set_defaults(func=_cmd_check)
    sc = rsub.add_parser("schema", help="print the JSON schema of recipes")
    sc.add_argument("--out", help="write to this file instead of standard output")
    sc.add_argument(
        "--shape-only", action="store_true", help="leave out the params of installed components"
    )
    sc.set_defaults(func=_cmd_schema)
    rp.set_defaults(func=lambda a: (rp.print_help(), 2)[1])  # type: ignore[func-returns-value]

    dp = sub.add_parser(
        "datasets", help="list dataset components, or load one and print its statistics"
    )
    dp.add_argument("--json", action="store_true", help="machine-readable output")
    dsub = dp.add_subparsers(dest="datasets_command", metavar="ACTION", parser_class=_Parser)
    dl = dsub.add_parser("list", help="list the dataset components (the default)")
    dl.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    dl.set_defaults(func=_cmd_datasets)
    ds = dsub.add_parser(
        "stats", help="load a dataset and print users, items, interactions, time range, ..."
    )
    ds.add_argument("name", help="registered name, e.g. movielens-100k.v1")
    ds.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param of the component (repeatable), e.g. -p path=data/ml-1m",
    )
    ds.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    ds.set_defaults(func=_cmd_datasets_stats)
    dp.set_defaults(func=_cmd_datasets)

    run = sub.add_parser("run", help="run a recipe's stages; writes metrics.json and report.md")
    run.add_argument("file", help="recipe file (.toml, .yaml, .yml or .json)")
    run.add_argument("--out", help="output folder (default: runs/<recipe name>)")
    run.add_argument(
        "--fresh", action="store_true", help="run every stage again instead of resuming"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bars or periodic progress lines"
    )
    run.add_argument(
        "--stage",
        action="append",
        metavar="NAME",
        help="run only this stage (repeat for more); other stages appear in the results only "
        "where an earlier run in the same --out finished them",
    )
    run.set_defaults(func=_cmd_run)

    return p


def _chosen_command(argv: list[str]) -> str | None:
    """The command word of ``argv`` (the top-level options take no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _add_plugin_commands(
    parser: argparse.ArgumentParser, chosen: str | None
) -> tuple[Any, list[str]]:
    """Add the plugins' commands to ``parser``: the chosen one configured by its plugin, the
    others as entries of the help listing. Returns the command table and its problems."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    table = pm.commands()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in sorted(table.commands):
        entry = table.commands[name]
        cp = sub.add_parser(
            name,
            help=f"{entry.summary} [{entry.plugin.label}]",
            description=entry.summary,
        )
        if name == chosen:
            entry.configure(cp)
    problems = [str(f) for f in pm.failures]
    problems += [
        f"command {name!r} is provided by "
        + " and ".join(f"{c.plugin.label} (plugin {c.plugin.name!r})" for c in claims)
        + "; uninstall one, or block one with RECAI_BLOCK_PLUGINS"
        for name, claims in sorted(table.conflicts.items())
    ]
    return table, problems


def _plugin_modules() -> dict[str, str]:
    """Top-level module name -> the label (``"recai-classic 0.1.0"``) of the installed plugin
    distribution that ships or declares it: its entry-point modules, the files it installed, and
    the modules its component and command factories name."""
    import importlib.metadata as md

    owners: dict[str, str] = {}
    for ep in md.entry_points(group="recai"):
        if ep.dist is None:
            continue
        label = f"{ep.dist.metadata['Name']} {ep.dist.version}".strip()
        owners.setdefault(ep.value.split(":")[0].split(".")[0], label)
        for f in ep.dist.files or ():
            top = f.parts[0] if f.parts else ""
            if top.endswith(".py"):
                owners.setdefault(top[:-3], label)
            elif top and "." not in top and not top.startswith("_"):
                owners.setdefault(top, label)
    try:
        from .plugins import get_plugin_manager

        pm = get_plugin_manager()
        declared = [(e.spec.factory, e.plugin) for e in pm.registry().all()]
        declared += [(c.spec.factory, c.plugin) for c in pm.commands().commands.values()]
    except Exception:  # noqa: BLE001 - blame is best effort; the error itself is reported anyway
        declared = []
    for factory, plugin in declared:
        if isinstance(factory, str) and plugin.distribution and plugin.distribution != "recai":
            owners.setdefault(factory.split(":")[0].split(".")[0], plugin.label)
    return owners


def _blame(error: BaseException) -> tuple[str, str] | None:
    """The installed recai plugin whose code raised ``error``, as ``(label, where)``.

    The innermost traceback frame in recai's own code or in a plugin (a distribution with an
    entry point in group ``recai``) decides; frames of other libraries are skipped. None when
    that frame is recai's own, or no plugin is involved.
    """
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    owners = _plugin_modules()
    for frame in reversed(frames):
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        top = module.split(".")[0]
        if top == "recai":
            return None
        if top in owners:
            code = frame.tb_frame.f_code
            return owners[top], f"{module}, line {frame.tb_lineno}, in {code.co_name}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    chosen = _chosen_command(argv)
    debug = "--debug" in argv[: argv.index(chosen) if chosen in argv else len(argv)]
    problems: list[str] = []
    table = None
    from .commands import KERNEL_COMMANDS

    if chosen not in KERNEL_COMMANDS:
        try:
            table, problems = _add_plugin_commands(parser, chosen)
        except Exception as e:  # noqa: BLE001 - a broken command is reported, not a traceback
            return _report(e, debug)
        if problems and chosen is None:
            parser.epilog = "Plugin problems (see `recai plugins`):\n" + "\n".join(
                f"  - {p}" for p in problems
            )
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
        if table is not None and chosen in table.conflicts:
            conflict = next(p for p in problems if p.startswith(f"command {chosen!r}"))
            print(f"recai: error: {conflict}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    from .openmp import passive_openmp

    passive_openmp()  # idle OpenMP threads sleep (recai.openmp)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("recai: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        return _report(e, args.debug)


def _report(e: Exception, debug: bool) -> int:
    """Print ``e`` for the person at the terminal; return the exit code.

    Everything printed (the message, its notes, the ``--debug`` traceback) passes through
    :func:`recai.secrets.redact_known`: no value a recipe took from the environment is shown.
    """
    from .errors import RecaiError
    from .secrets import redact_known

    def say(text: str) -> None:
        print(redact_known(text, shapes="none"), file=sys.stderr)

    if debug:
        import traceback

        say("".join(traceback.format_exception(e)).rstrip("\n"))
    if isinstance(e, RecaiError):
        say(f"recai: error: {e}")
        return e.exit_code
    notes = "".join(f"\n{n}" for n in getattr(e, "__notes__", []))
    culprit = _blame(e)
    if culprit is not None:
        label, where = culprit
        dist = label.split()[0]
        say(f"recai: error in the plugin {label} ({where}): {type(e).__name__}: {e}{notes}")
        say(
            f"This is a bug in {dist}, not in your input: please report it to {dist}'s authors"
            + ("" if debug else " (run again with --debug for the traceback)")
            + "."
        )
        return 1
    say(f"recai: internal error: {type(e).__name__}: {e}{notes}")
    if not debug:
        say("Run again with --debug for the traceback, and please report it.")
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
