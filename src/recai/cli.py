"""The ``recai`` command line.

Commands: ``plugins``, ``datasets`` (list, ``stats NAME``), ``recipe check|schema``, ``run``,
``eval RUN_DIR...`` (compare run folders; needs the recai-eval plugin), ``serve`` (an
OpenAI-compatible server for an LLM backend).

Exit codes: 0 success; 2 a user error (bad recipe, unknown name, bad file, bad arguments) with a
readable message and no traceback; 1 an internal failure (the traceback is shown with ``--debug``).

Only argparse is imported at start, so ``recai --help`` answers at once; everything else is
imported by the command that needs it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._version import __version__

__all__ = ["main"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    reg = pm.registry()
    components = [
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
                    "conflicts": conflicts,
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
            out += ["", f"{role.title}s:" if not role.title.endswith("s") else f"{role.title}es:"]
            out.append(_table(["name", "provided by", "summary"], rows, indent="  "))
    if conflicts or failures:
        out += ["", "Problems:"]
        out += [
            f"  - name {c['name']!r} is registered by: {', '.join(c['providers'])}"
            for c in conflicts
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

    schema = recipe_schema(None if args.shape_only else get_plugin_manager().registry())
    text = json.dumps(schema, indent=2) + "\n"
    if args.out:
        from .runtime import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .recipe import load_recipe
    from .runtime import run

    recipe = load_recipe(args.file)
    result = run(recipe, args.out, resume=not args.fresh, progress=not args.no_progress)
    print(result.to_markdown())
    if result.resumed:
        print(
            f"(resumed from earlier results: {', '.join(result.resumed)}; use --fresh to run them again)"
        )
    print(f"wrote {result.metrics_path} and {result.report_path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import importlib.util
    import json

    from .errors import RequirementError

    if importlib.util.find_spec("recai_eval") is None:
        raise RequirementError(
            "`recai eval` compares runs with the recai-eval plugin, which is not installed: "
            "pip install recai-eval"
        )
    from recai_eval.compare import compare_runs, comparison_chart

    from .runtime import _json_default, atomic_write_text

    comparison = compare_runs(
        args.runs, force=args.force, test=args.test, resamples=args.resamples, seed=args.seed
    )
    for stage in comparison.stages:
        for warning in stage.warnings:
            print(f"recai: warning: {warning}", file=sys.stderr)
    text = comparison.to_markdown()
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=_json_default))
    else:
        print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.chart:
        if comparison_chart(comparison, args.chart) is None:
            print("recai: warning: no chart (matplotlib is not installed)", file=sys.stderr)
        else:
            print(f"wrote {args.chart}", file=sys.stderr)
    return 0


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


def _param_value(text: str) -> Any:
    """A ``--param`` value: JSON for lists, objects and null; text otherwise (the params model
    turns ``"3"`` into 3 and ``"true"`` into True where the field asks for it)."""
    import json

    if text.strip()[:1] in ("[", "{") or text.strip() == "null":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _cmd_datasets_stats(args: argparse.Namespace) -> int:
    import json

    from .errors import RecaiError
    from .plugins import get_plugin_manager
    from .roles import Role

    params: dict[str, Any] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecaiError(f"--param {item!r}: expected KEY=VALUE, e.g. --param path=data/ml-1m")
        params[key.strip()] = _param_value(value)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import signal

    from .errors import RecaiError
    from .plugins import get_plugin_manager
    from .roles import Role
    from .serve import LLMServer, parse_fault

    if (args.recipe is None) == (args.use is None):
        raise RecaiError(
            "recai serve: give a recipe file (and --component NAME) or --use NAME, not both"
        )
    if args.recipe is not None:
        backend, label = _recipe_llm(args.recipe, args.component)
    else:
        if args.component is not None:
            raise RecaiError(
                "--component picks a component of a recipe; with --use, give its params with -p"
            )
        params = _params_of(args.param)
        backend = get_plugin_manager().create(Role.LLM_BACKEND, args.use, **params)
        label = args.use
    try:
        faults = [parse_fault(f) for f in args.fault]
    except ValueError as e:
        raise RecaiError(f"--fault: {e}") from None
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise RecaiError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set (or empty)"
            )
    model = args.model_name or label
    if args.max_concurrency < 0:
        raise RecaiError(
            f"--max-concurrency must be 0 (no bound) or more, got {args.max_concurrency}"
        )

    def log(line: str) -> None:
        print(f"recai serve: {line}", file=sys.stderr, flush=True)

    try:
        server = LLMServer(
            backend,
            model=model,
            host=args.host,
            port=args.port,
            max_concurrency=args.max_concurrency or None,
            api_key=api_key,
            faults=faults,
            log=None if args.quiet else log,
        )
    except OSError as e:
        raise RecaiError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        log(f"warning: listening on {args.host} without --api-key-env and without TLS")
    print(
        f"recai serve: {label} as model {model!r} at {server.base_url} (Ctrl-C stops)", flush=True
    )

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    print("recai serve: stopped", file=sys.stderr, flush=True)
    return 0


def _params_of(items: list[str]) -> dict[str, Any]:
    from .errors import RecaiError

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecaiError(
                f"--param {item!r}: expected KEY=VALUE, e.g. --param model=gpt-4o-mini"
            )
        params[key.strip()] = _param_value(value)
    return params


def _recipe_llm(path: str, component: str | None) -> tuple[Any, str]:
    """Build the LLM backend ``component`` of the recipe at ``path`` (and what it needs)."""
    import difflib

    from .errors import RecaiError
    from .plugins import get_plugin_manager
    from .recipe import build, check, load_recipe
    from .roles import Role

    recipe = load_recipe(path)
    pm = get_plugin_manager()
    plan = check(recipe, pm.registry())
    llms = [n for n, e in plan.resolved.items() if Role.LLM_BACKEND in e.roles]
    if component is None:
        if len(llms) != 1:
            which = f"it has {len(llms)}: {', '.join(llms)}" if llms else "it has none"
            raise RecaiError(
                f"{recipe.source}: name the LLM backend to serve with --component ({which})"
            )
        component = llms[0]
    elif component not in recipe.components:
        close = difflib.get_close_matches(component, list(recipe.components), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecaiError(
            f"{recipe.source}: no component named {component!r}.{hint} LLM backends: {', '.join(llms) or 'none'}"
        )
    elif component not in llms:
        entry = plan.resolved[component]
        raise RecaiError(
            f"{recipe.source}: component {component!r} is {entry.plays} ({entry.name}), not an LLM "
            f"backend; LLM backends: {', '.join(llms) or 'none'}"
        )
    return build(recipe, pm, only=[component])[component], component


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with a one-line hint, as argparse does
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
    rp.set_defaults(func=lambda a: (rp.print_help(), 2)[1])

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
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    ev = sub.add_parser(
        "eval",
        help="compare run folders side by side, with paired tests between runs",
        description=(
            "Show the metrics of run folders (written by `recai run`) side by side. Every later "
            "run is compared with the first, system by system, on the users both evaluated: the "
            "mean difference with a paired bootstrap interval, and a paired test. Runs that "
            "measured different data or protocols are refused (exit 2) unless --force."
        ),
    )
    ev.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders; the first is the reference"
    )
    ev.add_argument(
        "--force", action="store_true", help="compare runs with different data or protocols (warns)"
    )
    ev.add_argument(
        "--test", choices=["t", "wilcoxon"], default="t", help="paired test (default: t)"
    )
    ev.add_argument(
        "--resamples", type=int, default=2000, help="paired bootstrap resamples (default 2000)"
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.add_argument("--out", help="also write the Markdown comparison to this file")
    ev.add_argument(
        "--chart", metavar="PNG", help="also draw the first stage's metrics into this PNG"
    )
    ev.set_defaults(func=_cmd_eval)

    sv = sub.add_parser(
        "serve",
        help="serve an LLM backend over the OpenAI chat API (loopback by default)",
        description=(
            "Serve one LLM backend component over the OpenAI-compatible API: POST "
            "/v1/chat/completions (streaming too), GET /v1/models. Name it by a recipe and "
            "--component, or by --use NAME with -p KEY=VALUE params. Stops on Ctrl-C or SIGTERM."
        ),
    )
    sv.add_argument("recipe", nargs="?", help="recipe file whose LLM backend component to serve")
    sv.add_argument(
        "--component",
        "-c",
        help="the recipe's component to serve (needed if it has several LLM backends)",
    )
    sv.add_argument("--use", help="registered name of an LLM backend to serve instead, e.g. hf.v1")
    sv.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param of --use (repeatable)",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    sv.add_argument(
        "--model-name", help="the model name clients send (default: the component or --use name)"
    )
    sv.add_argument(
        "--max-concurrency",
        type=int,
        default=1,
        help="requests the backend handles at once (default 1, as local models are rarely thread-safe; 0: no bound)",
    )
    sv.add_argument(
        "--api-key-env", metavar="VAR", help="require the key held by this environment variable"
    )
    sv.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="for tests: fail the next requests in order, e.g. 429:retry-after=1, 500:times=2, "
        "delay:seconds=5, malformed, drop:after=2, auth-echo",
    )
    sv.add_argument("--quiet", "-q", action="store_true", help="no request log on stderr")
    sv.set_defaults(func=_cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        from .errors import RecaiError

        if args.debug:
            import traceback

            traceback.print_exc()
        if isinstance(e, RecaiError):
            print(f"recai: error: {e}", file=sys.stderr)
            return e.exit_code
        notes = "".join(f"\n{n}" for n in getattr(e, "__notes__", []))
        print(f"recai: internal error: {type(e).__name__}: {e}{notes}", file=sys.stderr)
        if not args.debug:
            print(
                "Run again with --debug for the traceback, and please report it.", file=sys.stderr
            )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
