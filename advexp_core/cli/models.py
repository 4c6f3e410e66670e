"""``advexp models``: every model id, where its weights come from and whether it loads offline."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from advexp_core.cli.common import add_json_argument
from advexp_core.networks.registry import list_models


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="list model ids, their sources and offline availability")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {"models": [asdict(info) for info in list_models()]}


def summary(result: dict[str, Any]) -> str:
    lines = []
    for m in result["models"]:
        mark = "offline" if m["available_offline"] else "online only"
        lines.append(f"{m['model_id']:<32} {mark:<12} {m['title']}\n{'':<32} source: {m['source']}")
    return "\n".join(lines)
