"""Run one simulator in its own process: `python -m phoneops.simulators NAME [--port P] [--knob VALUE ...]`.

Every scalar field of the simulator's config dataclass is a flag (`latency_ms` -> `--latency-ms`, booleans
as `--prolog-quirk/--no-prolog-quirk`, `dict[str, str]` fields as repeatable `--users NAME:VALUE`). To add
a simulator, register its module, config class and app factory in `SIMULATORS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from phoneops.simulators._server import LOCALHOST, run


@dataclass(frozen=True)
class Simulator:
    module: str
    config_class: str
    factory: str = "create_app"  # factory(config) -> ASGI app
    port: int = 8900

    def load(self) -> tuple[type[Any], Callable[[Any], Any]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, self.factory)


SIMULATORS: dict[str, Simulator] = {
    "gsm_fusion": Simulator("phoneops.simulators.gsm_fusion", "GsmFusionSimConfig", port=8901),
    "hlr_lookup": Simulator("phoneops.simulators.hlr_lookup", "HlrSimConfig", port=8902),
    "voluum": Simulator("phoneops.simulators.voluum", "VoluumSimConfig", port=8905),
    "messagewhiz": Simulator("phoneops.simulators.messagewhiz", "MessageWhizSimConfig", port=8906),
    "ongage": Simulator("phoneops.simulators.ongage", "OngageSimConfig", port=8907),
    "dhru": Simulator("phoneops.simulators.dhru", "DhruSimConfig", port=8908),
}


def _unwrap_optional(hint: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name, value


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type[Any]) -> None:
    """One flag per scalar config field; unset flags keep the dataclass default."""
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        hint, flag = _unwrap_optional(hints[f.name]), "--" + f.name.replace("_", "-")
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        kw: dict[str, Any] = {"dest": f.name, "default": None}
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif hint in (int, float, str, Decimal):
            kw["type"] = hint
        elif origin is typing.Literal:
            kw["choices"] = list(args)
        elif origin is dict and args == (str, str):
            kw.update(action="append", type=_pair, metavar="NAME:VALUE")
        elif origin is tuple and args == (str, ...):
            kw.update(action="append", metavar="VALUE")
        else:
            continue  # structured knobs (catalogues) are changed through POST /_sim/config
        parser.add_argument(flag, **kw)


def config_from_args(config_class: type[Any], args: argparse.Namespace) -> Any:
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = dict(value) if typing.get_origin(hints[name]) is dict else tuple(value)
    return config_class(**{name: value for name, value in values.items() if value is not None})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phoneops.simulators", description=__doc__)
    commands = parser.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    for name, spec in SIMULATORS.items():
        sub = commands.add_parser(name, help=f"the {name} simulator")
        sub.add_argument("--host", default=LOCALHOST)
        sub.add_argument("--port", type=int, default=spec.port)
        sub.add_argument("--log-level", default="warning")
        add_config_arguments(sub, spec.load()[0])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_class, factory = SIMULATORS[args.simulator].load()
    app = factory(config_from_args(config_class, args))
    print(f"{args.simulator} simulator on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
