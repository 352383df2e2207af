"""Count the words of the training split."""

from __future__ import annotations

from compress.data import train_split
from compress.io import write_json

NAME = "count"
DEPENDS: tuple[str, ...] = ()
CONFIG = ("data", "seed")


def run(cfg, ctx) -> dict:
    texts = train_split(cfg).texts
    words = sum(len(t.split()) for t in texts)
    write_json(ctx.out / "count.json", {"sentences": len(texts), "words": words})
    ctx.console.print(f"count: {words} words in {len(texts)} sentences")
    return {"sentences": len(texts), "words": words}
