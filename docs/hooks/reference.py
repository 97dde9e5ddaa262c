"""The reference pages, generated from the code each time the site is built (an MkDocs hook), so they cannot
drift from it: every workload and model-zoo key from the pydantic schema, every command's flags from its
parser, every report key from the report schema. A key or flag without a description fails the build."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

# Where the configuration files' models live, in the order the page shows them.
CONFIG_MODULES = (
    ("core.config.schema", "Workloads and model-zoo entries (ByteMLPerf general_perf's files and ours)"),
    ("core.assets.spec", "Assets a model-zoo entry downloads (`perfbench prepare`)"),
    ("core.config.llm", "LLM workloads and model-zoo entries (ByteMLPerf llm_perf's files)"),
    ("core.fleet.sweep", "Sweep files (`perfbench sweep`)"),
    ("backends.CPU.config", "CPU `engine_options`"),
    ("backends.GPU.config", "GPU `engine_options`"),
)
REPORT_MEANINGS = Path(__file__).with_name("report_keys.yml")


class MissingDescription(Exception):
    """Something users meet has no description in the code: say which, so it gets one."""


# ---------------------------------------------------------------- configuration keys
def config_models() -> list[tuple[str, list[type[BaseModel]]]]:
    """(module, its public pydantic models in the order written) for every module of CONFIG_MODULES."""
    found = []
    for name, _ in CONFIG_MODULES:
        module = importlib.import_module(name)
        models = [
            value
            for key, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseModel)
            and value.__module__ == name
            and not key.startswith("_")
        ]
        found.append((name, models))
    return found


def _type(annotation: Any) -> str:
    """`float | None`, `list[int]`, `"FP32" | "BF16"`: a field's type as a reader would write it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "none"
    if annotation is Any:
        return "any"
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(arg) for arg in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join('...' if arg is Ellipsis else _type(arg) for arg in args)}]"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _default(info) -> str:
    if info.default_factory is not None:
        if info.default_factory not in (dict, list) and info.default_factory.__name__ != "<lambda>":
            # a computed default (this host's cores), or a model with its own defaults
            return f"`{info.default_factory.__name__}()`"
        return f"`{json.dumps(info.default_factory())}`"
    if info.default is PydanticUndefined:
        return "required"
    return "none" if info.default is None else f"`{json.dumps(info.default, default=str)}`"


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, <placeholders> shown rather than read as HTML tags."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def missing_config_descriptions() -> list[str]:
    return [
        f"{module}.{model.__name__}.{field}"
        for module, models in config_models()
        for model in models
        for field, info in model.model_fields.items()
        if not (info.description or "").strip()
    ]


def config_page() -> str:
    missing = missing_config_descriptions()
    if missing:
        raise MissingDescription(f"fields without description=: {', '.join(missing)}")
    lines = [
        "# Workload and model-zoo keys",
        "",
        "Every key a configuration file takes, generated from the schema the files are validated against",
        "(`Field(description=...)` in the modules named). An unknown key is refused with a did-you-mean.",
        "",
    ]
    titles = dict(CONFIG_MODULES)
    for module, models in config_models():
        lines += [f"## {titles[module]}", "", f"From `{module}`.", ""]
        for model in models:
            doc = inspect.cleandoc(model.__dict__.get("__doc__") or "")  # its own, not BaseModel's
            lines += [f"### `{model.__name__}`", "", doc.split("\n\n")[0].replace("\n", " "), ""]
            lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
            for field, info in model.model_fields.items():
                key = f"`{field}`" + (f" (or `{info.alias}`)" if info.alias and info.alias != field else "")
                kind = _type(info.annotation)  # in a code span: its pipes do not split the cell
                lines.append(f"| {key} | `{kind}` | {_default(info)} | {_cell(info.description or '')} |")
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- command-line flags
def command_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """("perfbench run", its parser), ... for every subcommand, from the modules core.cli hands them to."""
    from core.cli import COMMANDS, EVALUATORS

    parsers = []
    for name, (module, _) in COMMANDS.items():
        for sub, target in [(name, module)] if module else [(f"{name} {k}", m) for k, m in EVALUATORS.items()]:
            parser = importlib.import_module(target).build_parser()
            parser.prog = f"perfbench {sub}"
            parsers.append((parser.prog, parser))
    return parsers


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def missing_flag_help() -> list[str]:
    return [
        f"{prog} {'/'.join(action.option_strings) or action.dest}"
        for prog, parser in command_parsers()
        for action in _arguments(parser)
        if not (action.help or "").strip()
    ]


def cli_page() -> str:
    missing = missing_flag_help()
    if missing:
        raise MissingDescription(f"arguments without help=: {', '.join(missing)}")
    from core.cli import COMMANDS

    lines = [
        "# Command-line flags",
        "",
        "Every flag of every command, generated from the parsers the commands run (`--help` prints the same).",
        "Each `perfbench` subcommand is also a module (`python -m core.perf_engine`, ...) with the same flags.",
        "",
    ]
    for prog, parser in command_parsers():
        name = prog.split()[1]
        what = COMMANDS[name][1]
        usage = parser.format_usage().strip()
        lines += [f"## `{prog}`", "", what[0].upper() + what[1:] + ".", "", "```", usage, "```", ""]
        lines += ["| argument | default | meaning |", "|---|---|---|"]
        for action in _arguments(parser):
            names = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar or action.dest}`"
            if action.choices:
                names += f" ({', '.join(str(c) for c in action.choices)})"
            default = action.default
            shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else f"`{default}`"
            lines.append(f"| {names} | {shown} | {_cell((action.help or '').replace('%%', '%'))} |")
        if parser.epilog:
            lines += ["", parser.epilog.replace("\n", " ")]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- report keys
def report_keys() -> list[tuple[str, list[str]]]:
    """(section, its keys) as the report schema spells them: the top level, each typed section, a row."""
    from core.reporting.llm_rows import ClientSide, Distribution, LlmRoofline, LlmRow, ServerSide
    from core.reporting.report import TYPED_KEYS
    from core.reporting.schema import ROW_KEYS
    from core.reporting.sections import (
        Accuracy,
        CandidateRow,
        EngineSelection,
        GraphCompile,
        HostInfo,
        LoadGenResult,
        NumericDrift,
        Weights,
    )

    def keys(section) -> list[str]:
        return list(section.KEYS.values())

    return [
        ("Top level", list(TYPED_KEYS)),
        ("Performance row", list(ROW_KEYS.values())),
        ("Graph Compile", keys(GraphCompile)),
        ("Engine Selection", keys(EngineSelection)),
        ("Engine Selection candidate", keys(CandidateRow)),
        ("Accuracy", [*keys(Accuracy), *Accuracy.COUNTS, *keys(NumericDrift)]),
        ("LoadGen", keys(LoadGenResult)),
        ("LLM Performance row", keys(LlmRow)),
        ("LLM latency distribution", keys(Distribution)),
        ("LLM client", keys(ClientSide)),
        ("LLM server", keys(ServerSide)),
        ("LLM roofline", keys(LlmRoofline)),
        ("Host", keys(HostInfo)),
        ("Weights", keys(Weights)),
    ]


def report_meanings() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(REPORT_MEANINGS.read_text(encoding="utf-8"))


def missing_report_meanings() -> list[str]:
    meanings = report_meanings()
    return [
        f"{section}: {key}"
        for section, keys in report_keys()
        for key in keys
        if not str(meanings.get(section, {}).get(key, {}).get("meaning", "")).strip()
    ]


def stale_report_meanings() -> list[str]:
    """Meanings of keys the report schema no longer has (Other sections are listed by hand, not in the schema)."""
    known = dict(report_keys())
    return [
        f"{section}: {key}"
        for section, entries in report_meanings().items()
        if section != "Other sections"
        for key in entries
        if key != "_about" and key not in known.get(section, ())
    ]


def report_page() -> str:
    missing = missing_report_meanings()
    if missing:
        raise MissingDescription(f"report keys without a meaning in {REPORT_MEANINGS.name}: {', '.join(missing)}")
    meanings = report_meanings()
    lines = [
        "# Report keys",
        "",
        "Every key of a report, generated from the report schema (`core/reporting/schema.py`, `sections.py`,",
        "`report.py`); the meanings are kept in `docs/hooks/report_keys.yml`, and the build fails on a key",
        "without one. **B**: ByteMLPerf's key (its `tools/build_pdf.py` reads it). For how to read them",
        "together, see [Reading a report](../reports.md); for the words, the [glossary](../glossary.md).",
        "",
    ]
    for section, keys in report_keys():
        lines += [f"## {section}", "", meanings.get(section, {}).get("_about", ""), ""]
        lines += ["| key | | meaning |", "|---|---|---|"]
        for key in keys:
            entry = meanings[section][key]
            mark = "B" if entry.get("bytemlperf") else ""
            lines.append(f"| `{key}` | {mark} | {_cell(str(entry['meaning']))} |")
        lines.append("")
    extra = meanings.get("Other sections", {})
    lines += ["## Other sections", "", extra.get("_about", ""), "", "| key | meaning |", "|---|---|"]
    lines += [f"| `{key}` | {_cell(v['meaning'])} |" for key, v in extra.items() if key != "_about"]
    return "\n".join(lines) + "\n"


PAGES = {"reference/config.md": config_page, "reference/cli.md": cli_page, "reference/report.md": report_page}


def on_files(files, config):  # MkDocs hook: add the generated pages before the build reads the nav
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    for uri, render in PAGES.items():
        try:
            files.append(File.generated(config, uri, content=render()))
        except MissingDescription as err:
            raise PluginError(str(err)) from None
    return files
