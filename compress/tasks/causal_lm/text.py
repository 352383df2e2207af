"""Text for causal language models: a file, a folder of .txt files, a hub dataset, or generated text;
held-out text at the end; a byte-level BPE tokenizer trained on the training text; blocks of token ids.

Packed (``data.packing: true``): the token stream is cut into blocks of ``data.max_length`` tokens, no
padding. Padded: one row per paragraph (blank-line separated), truncated to ``data.max_length``, padded per
batch and masked in every loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from compress.config import is_local_path
from compress.data import Encoded
from compress.errors import CompressError
from compress.io import read_jsonl

EOS = "<|endoftext|>"


@dataclass
class Text:
    train: str
    eval: str
    source: str  # where the text came from, and how the held-out part was chosen


def load_text(cfg) -> Text:
    """The training and held-out text of a pipeline (``cfg.data``)."""
    d = cfg.data
    if d.source == "generated":
        return _holdout(generate_text(d.generated_size, seed=cfg.seed), d.holdout_fraction, "generated text")
    if is_local_path(d.source):
        path = Path(d.source).expanduser()
        if path.is_file():
            if path.suffix == ".jsonl":
                return _holdout(_documents([path], d.text_column, cfg.seed), d.holdout_fraction, str(path))
            return _holdout(_read(path), d.holdout_fraction, str(path))
        if path.is_dir():
            train, held = path / f"{d.train_split}.txt", path / f"{d.eval_split}.txt"
            if train.is_file() and held.is_file():
                return Text(_read(train), _read(held), f"{train} and {held}")
            files = sorted(path.glob("*.txt"))
            jsonl = sorted(path.glob("*.jsonl"))
            if not files and jsonl:
                return _holdout(_documents(jsonl, d.text_column, cfg.seed), d.holdout_fraction,
                                f"{len(jsonl)} .jsonl files in {path} (field '{d.text_column}', documents shuffled "
                                f"with seed {cfg.seed})")
            if not files:
                raise CompressError(f"data.source: no .txt or .jsonl files in {path}")
            return _holdout("\n\n".join(_read(f) for f in files), d.holdout_fraction, f"{len(files)} .txt files in {path}")
        raise CompressError(f"data.source: not found: {d.source}")
    return _hub(d)


def _documents(paths: list[Path], field: str, seed: int) -> str:
    """The ``field`` of every JSON line of ``paths``, documents in a seeded order (so the held-out end of the text
    mixes every file), separated by blank lines."""
    docs = []
    for path in paths:
        for i, row in enumerate(read_jsonl(path), 1):
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise CompressError(f"data.text_column: JSON line {i} of {path} has no text field '{field}' (fields "
                                    f"found: {', '.join(row) if isinstance(row, dict) else type(row).__name__})")
            if row[field].strip():
                docs.append(row[field].strip())
    random.Random(seed).shuffle(docs)
    return "\n\n".join(docs) + "\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CompressError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _holdout(text: str, fraction: float, source: str) -> Text:
    """The last ``fraction`` of the text, starting at a line boundary, is held out."""
    if len(text.strip()) < 100:
        raise CompressError(f"data.source: {source} holds only {len(text)} characters; a language model needs more text")
    cut = int(len(text) * (1 - fraction))
    newline = text.find("\n", cut)
    cut = newline + 1 if 0 <= newline < len(text) - 1 else cut
    return Text(text[:cut], text[cut:], f"{source}, the last {fraction:.0%} held out (from character {cut:,})")


def _hub(d) -> Text:
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise CompressError("data.source: hub datasets need the 'datasets' package (pip install datasets)") from None

    def split(name: str) -> str:
        try:
            ds = datasets.load_dataset(d.source, d.subset, split=name)
        except Exception as exc:  # the hub raises many kinds; one sentence is what the user needs
            raise CompressError(f"data.source: could not load hub dataset {d.source!r} (subset {d.subset!r}, split "
                                f"{name!r}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if d.text_column not in ds.column_names:
            raise CompressError(f"data.text_column: column '{d.text_column}' not in split '{name}' of {d.source} "
                                f"(columns found: {', '.join(ds.column_names)})")
        return "\n\n".join(t for t in ds[d.text_column] if t and t.strip())

    return Text(split(d.train_split), split(d.eval_split), f"hub dataset {d.source} ({d.train_split} / {d.eval_split})")


_SUBJECTS = "the king|the queen|a soldier|the old man|my lord|the fool|a servant|the duke|her brother|the people".split("|")
_VERBS = "loves|fears|betrays|follows|praises|curses|remembers|forgives|serves|mocks".split("|")
_OBJECTS = "the crown|his father|the city|a stranger|the sea|her honour|the night|their friends|the gods|this land".split("|")
_ENDINGS = ["", " tonight", " for ever", " in secret", " with all his heart", " at dawn", " and weeps"]


def generate_text(lines: int, seed: int) -> str:
    """Learnable pseudo-English: speaker lines of subject-verb-object sentences (tests, a first look)."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        speaker = rng.choice(["KING", "QUEEN", "FOOL", "DUKE"])
        sentences = [f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
                     f"{rng.choice(_ENDINGS)}." for _ in range(rng.randint(1, 3))]
        out.append(f"{speaker}:\n{' '.join(sentences)}\n")
    return "\n".join(out)


def train_bpe_tokenizer(text: str, vocab_size: int, max_length: int):
    """A GPT-2-style byte-level BPE tokenizer trained on ``text`` (deterministic for a given text and size);
    ``<|endoftext|>`` is bos, eos, unk and pad (padding is masked everywhere)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_chunks(text), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
                                   model_max_length=max_length)


def _chunks(text: str, size: int = 1 << 16):
    for i in range(0, len(text), size):
        yield text[i : i + size]


_STREAMS: dict[tuple[str, str], list[int]] = {}  # the stages of one run tokenize the same text with the same tokenizer


def token_stream(tokenizer, text: str) -> list[int]:
    """Token ids of ``text``, tokenized in chunks of 2,000 lines (bounded memory; a chunk boundary can only split
    a run of newlines into two tokens where one call would have made one). Kept in memory for the next stage of
    the run that asks for the same text with the same tokenizer (millions of tokens take minutes on 2 cores)."""
    import hashlib

    backend = getattr(tokenizer, "backend_tokenizer", None)
    key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
           hashlib.sha256(backend.to_str().encode()).hexdigest() if backend is not None else repr(tokenizer))
    if key in _STREAMS:
        return list(_STREAMS[key])
    ids: list[int] = []
    lines = text.splitlines(keepends=True)
    chunks = ["".join(lines[start : start + 2000]) for start in range(0, len(lines), 2000)]
    for start in range(0, len(chunks), 8):  # a batch of chunks: the fast tokenizer spreads it over the cores
        for row in tokenizer(chunks[start : start + 8], add_special_tokens=False)["input_ids"]:
            ids += row
    if len(ids) > 100_000:
        _STREAMS.clear()  # one large stream at a time
        _STREAMS[key] = list(ids)
    return ids


def blocks(tokenizer, text: str, max_length: int, packing: bool) -> list[list[int]]:
    """Rows of token ids: packed blocks of ``max_length`` (the last one shorter), or one row per paragraph."""
    if packing:
        ids = token_stream(tokenizer, text)
        rows = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
    else:
        paragraphs = [p.strip("\n") + "\n" for p in text.split("\n\n") if p.strip()]
        rows = tokenizer(paragraphs, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [r for r in rows if len(r) >= 2]  # a row predicts at least one token


def train_rows(cfg, tokenizer, text: Text) -> Encoded:
    """The training rows (a seeded choice of data.max_train_samples of them when set); labels are unused."""
    rows = blocks(tokenizer, text.train, cfg.data.max_length, cfg.data.packing)
    if cfg.data.max_train_samples is not None and cfg.data.max_train_samples < len(rows):
        order = list(range(len(rows)))
        random.Random(cfg.seed).shuffle(order)
        rows = [rows[i] for i in sorted(order[: cfg.data.max_train_samples])]
    return as_encoded(rows)


def eval_rows(cfg, tokenizer, text: Text) -> list[list[int]]:
    """Held-out rows for perplexity, in text order (the first data.max_eval_samples when set)."""
    rows = blocks(tokenizer, text.eval, cfg.data.max_length, cfg.data.packing)
    if not rows:
        raise CompressError("data: the held-out text has no complete row; hold out more (data.holdout_fraction)")
    return rows[: cfg.data.max_eval_samples] if cfg.data.max_eval_samples else rows


def as_encoded(rows: list[list[int]]) -> Encoded:
    return Encoded(rows, [0] * len(rows))  # the training loop's rows; next-token labels come from the ids


def prompts(tokenizer, text: str, count: int, length: int) -> list[list[int]]:
    """``count`` prompts of ``length`` tokens, each starting at a line spread evenly over ``text``."""
    lines = [i for i, line in enumerate(text.splitlines(keepends=True)) if line.strip()]
    all_lines = text.splitlines(keepends=True)
    out = []
    for k in range(count):
        start = lines[(k * len(lines)) // max(count, 1)] if lines else 0
        ids = tokenizer("".join(all_lines[start : start + 40]), add_special_tokens=False)["input_ids"][:length]
        if len(ids) == length:
            out.append(ids)
    if len(out) < count:
        raise CompressError(f"data: the held-out text gives only {len(out)} prompts of {length} tokens, {count} needed")
    return out
