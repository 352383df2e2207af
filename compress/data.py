"""Task data: local files (tsv/csv/jsonl/json, read by compress.datafiles), a hub dataset, or the generated
sentiment task (compress.generated).

A split is two lists, ``texts`` and ``labels``. Tokenized splits are lists of token ids,
padded per batch, and batches are grouped by length so that little time goes to padding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from compress.config import DataConfig, is_local_path
from compress.datafiles import SUFFIXES, looks_like_data, read_file, short, suggest_columns
from compress.errors import CompressError
from compress.generated import generate_sentiment
from compress.labels import LabelSet, decide
from compress.labels import problem as label_problem


@dataclass
class Split:
    name: str
    texts: list[str]
    labels: list[int]
    label_set: LabelSet | None = None  # how the file's labels became ids, and their names (compress.labels)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def names(self) -> tuple[str, ...]:
        """The class names, id by id; empty where the data has integer ids that nothing names."""
        return self.label_set.names if self.label_set else ()


@dataclass
class Rows:
    """A split as read, before its labels become ids."""

    rows: list[dict[str, Any]]
    where: str  # the file (or the source) they came from: error lines name it
    class_names: list[str] | None = None  # what the source calls its integer classes (a hub ClassLabel)
    columns: list[str] | None = None  # a .tsv/.csv file's columns, in order
    headed: bool = False  # its columns are its first row's cells (else data.columns names them, or it is JSON)


def load_split(cfg: DataConfig, split: str, num_labels: int, seed: int = 0, limit: int | None = None,
               shuffle: bool = False) -> Split:
    """Read ``split``; optionally a seeded shuffle, then the first ``limit`` rows. Its labels are read as the
    training split's are (compress.labels: integer ids, or names in a recorded order)."""
    rows = read_rows(cfg, split, seed)
    labels = label_set(cfg, num_labels, seed, rows if split == cfg.train_split else None)
    data = _to_split(rows, cfg, split, num_labels, labels)  # checked in file order: problems name the file's rows
    pairs = list(zip(data.texts, data.labels))
    if shuffle:
        random.Random(seed).shuffle(pairs)
    if limit is not None:
        pairs = pairs[:limit]
    return Split(split, [t for t, _ in pairs], [y for _, y in pairs], labels)


def read_rows(cfg: DataConfig, split: str, seed: int = 0) -> Rows:
    """The rows of ``split`` as the source holds them; an empty split is an error."""
    if cfg.source == "generated":  # noisy labels for training, the rule's own for evaluation (compress.generated)
        train = split == cfg.train_split
        size = cfg.generated_size if train else max(200, cfg.generated_size // 2)
        rows = Rows(generate_sentiment(size, seed=hash_seed(split, seed),
                                       label_noise=cfg.generated_label_noise if train else 0.0), "generated data")
    elif is_local_path(cfg.source):
        folder = Path(cfg.source).expanduser()
        path = _local_file(folder, split)
        if split != cfg.train_split and path.resolve() == _local_file(folder, cfg.train_split).resolve():
            raise CompressError(f"data: split '{split}' is read from {path}, which is the training split's file "
                                f"({_local_file(folder, cfg.train_split)}); a model is judged on rows it has not "
                                "trained on: give it its own file")
        table = read_file(path, cfg.columns)
        rows = Rows(table.rows, str(path), columns=table.columns, headed=table.headed)
    else:
        rows = _read_hub(cfg, split)
    if not rows.rows:
        raise CompressError(f"data: split '{split}' of {cfg.source} is empty")
    return rows


def refusals(cfg: DataConfig, labelled: bool = True) -> list[str]:
    """Data settings that are valid one by one but cannot work together, one line each (a task's rules call it:
    validate and run refuse them at load). ``labelled``: the task reads a label column."""
    problems = []
    splits = (("eval_split", cfg.eval_split), ("validation_split", cfg.validation_split))[: 2 if labelled else 1]
    for key, split in splits:
        if split is not None and split == cfg.train_split:
            use = "a model is judged" if key == "eval_split" else "the best epoch is picked (and training stopped)"
            problems.append(f"data.{key}: '{split}' is also data.train_split; {use} on rows it has not trained "
                            "on: name another split (e.g. test, validation)")
    if labelled and cfg.text_column == cfg.label_column:
        problems.append(f"data.text_column: '{cfg.text_column}' is also data.label_column; the model would read its "
                        "answer: name the column that holds the text")
    if cfg.columns and (cfg.source == "generated" or not is_local_path(cfg.source)):
        problems.append(f"data.columns: names the columns of header-less .tsv/.csv files in a local folder; "
                        f"data.source is {'the generated task' if cfg.source == 'generated' else 'a hub dataset'}, "
                        "whose columns are named (set it to null)")
    if cfg.columns and labelled:
        for key, name in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
            if name not in cfg.columns:
                problems.append(f"data.{key}: '{name}' is not one of data.columns ({', '.join(cfg.columns)}); name "
                                f"that column '{name}' in data.columns, or set data.{key} to one of them")
    return problems


def hash_seed(split: str, seed: int) -> int:
    return seed * 1000 + sum(map(ord, split))


_LABEL_SETS: dict[tuple, LabelSet] = {}  # one decision per training split per process: other splits reuse it


def label_set(cfg: DataConfig, num_labels: int, seed: int = 0, train: Rows | None = None) -> LabelSet:
    """How this pipeline's labels are read, decided on its whole training split (compress.labels.decide) and kept
    for the other splits; ``train``: its rows when they were just read (then decided again)."""
    key = (_source_key(cfg, seed), cfg.label_column, tuple(cfg.labels or ()), tuple(cfg.columns or ()), num_labels)
    if train is None:
        if key in _LABEL_SETS:
            return _LABEL_SETS[key]
        train = read_rows(cfg, cfg.train_split, seed)
    _check_columns(train, cfg, cfg.train_split)
    found = decide((row.get(cfg.label_column) for row in train.rows), num_labels, cfg.labels, train.class_names,
                   cfg.train_split, train.where)
    _LABEL_SETS[key] = found
    return found


def _source_key(cfg: DataConfig, seed: int) -> tuple:
    """What the training split's content depends on: a local file's path, size and modification time."""
    if cfg.source == "generated":
        return ("generated", cfg.generated_size, seed, cfg.train_split)
    if is_local_path(cfg.source):
        path = _local_file(Path(cfg.source).expanduser(), cfg.train_split)
        stat = path.stat()
        return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return (cfg.source, cfg.subset, cfg.train_split)


def _check_columns(rows: Rows, cfg: DataConfig, split: str) -> None:
    found = rows.columns or list(rows.rows[0].keys())
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in found]
    if missing and rows.headed and looks_like_data(found, rows.rows):
        names = suggest_columns(found, rows.rows, cfg.text_column, cfg.label_column)
        raise CompressError(
            f"data: {rows.where} has no column {' or '.join(repr(c) for c in missing)}; its first row looks like data, "
            f"not a header ({', '.join(repr(short(c)) for c in found)}): if the file has no header row, name its "
            f"{len(found)} columns with data.columns (e.g. data.columns: [{', '.join(names)}])")
    if missing:
        raise CompressError(
            *(f"data.{'text' if c == cfg.text_column else 'label'}_column: column '{c}' not in split '{split}' "
              f"({rows.where}; columns found: {', '.join(map(str, found))})" for c in missing)
        )


def _to_split(rows: Rows, cfg: DataConfig, split: str, num_labels: int, labels: LabelSet) -> Split:
    _check_columns(rows, cfg, split)
    texts, ids, bad, bad_text = [], [], [], []
    for i, row in enumerate(rows.rows):
        label = labels.to_id(row.get(cfg.label_column), num_labels)
        text = row.get(cfg.text_column)
        if label is None:
            bad.append((i, row.get(cfg.label_column)))
            continue
        if text is not None and not isinstance(text, (str, int, float)):
            bad_text.append((i, text))
            continue
        texts.append("" if text is None else str(text))
        ids.append(label)
    problems = []
    if bad:
        problems.append(label_problem(bad, labels, num_labels, split, rows.where))
    if bad_text:
        shown = ", ".join(f"row {i + 1}: {type(v).__name__}" for i, v in bad_text[:3])
        problems.append(f"data.text_column: {len(bad_text)} value(s) of column '{cfg.text_column}' in split '{split}' "
                        f"({rows.where}) are not text; first: {shown}")
    if problems:
        raise CompressError(*problems)
    return Split(split, texts, ids, labels)


def _local_file(folder: Path, split: str) -> Path:
    found = [folder / f"{split}{suffix}" for suffix in SUFFIXES if (folder / f"{split}{suffix}").is_file()]
    if len(found) > 1:
        raise CompressError(f"data: split '{split}' has {len(found)} files in {folder}: "
                            f"{' and '.join(p.name for p in found)}; keep one (a split is read from one file)")
    if found:
        return found[0]
    have = sorted(p.name for p in folder.iterdir() if p.suffix in SUFFIXES)
    raise CompressError(
        f"data: no file for split '{split}' in {folder} (looked for {split}.tsv/.csv/.jsonl/.json; found: {', '.join(have) or 'none'})"
    )


def _read_hub(cfg: DataConfig, split: str) -> Rows:
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency, but say what to do if it is gone
        raise CompressError("data.source: hub datasets need the 'datasets' package (pip install datasets)") from None
    try:
        ds = datasets.load_dataset(cfg.source, cfg.subset, split=split)
    except Exception as exc:  # the hub raises many kinds; one sentence is what the user needs
        raise CompressError(f"data.source: could not load hub dataset {cfg.source!r} (subset {cfg.subset!r}, split {split!r}): {exc}") from None
    feature = getattr(ds, "features", {}).get(cfg.label_column)
    names = getattr(feature, "names", None)  # a ClassLabel names its integer classes
    where = f"hub dataset {cfg.source}" + (f" ({cfg.subset})" if cfg.subset else "")
    return Rows(list(ds), where, list(names) if names else None)


# ----------------------------------------------------------------------------- tokenized batches


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> tuple[list[int], int, int]:
        return self.input_ids[i], self.labels[i], i


def encode(tokenizer, split: Split, max_length: int) -> Encoded:
    ids = tokenizer(split.texts, truncation=True, max_length=max_length)["input_ids"]
    return Encoded(ids, list(split.labels))


def count_truncated(tokenizer, texts: list[str], max_length: int) -> dict:
    """How many of ``texts`` are longer than ``max_length`` tokens (special tokens included), so that
    ``encode`` cuts them, and the longest length found."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]] if texts else []
    return {"rows": len(texts), "truncated": sum(n > max_length for n in lengths), "longest_tokens": max(lengths, default=0)}


def collate(pad_id: int):
    """Pad a list of (ids, label, row index) to the longest in the batch."""
    import torch

    def _collate(items: list[tuple]) -> dict[str, Any]:
        width = max(len(item[0]) for item in items)
        input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            input_ids[row, : len(item[0])] = torch.tensor(item[0])
            mask[row, : len(item[0])] = 1
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if len(items[0]) > 2:  # the row of each example: looks up cached teacher outputs
            batch["index"] = torch.tensor([item[2] for item in items], dtype=torch.long)
        return batch

    return _collate


class LengthGroupedBatches:
    """Batch sampler: shuffled, then sorted by length inside windows of 50 batches.

    Sentences of similar length share a batch, so padding costs little, while the order of
    batches stays random. ``set_epoch`` reshuffles reproducibly. With ``num_shards`` > 1 each
    process takes its share (``shard``) of every global batch, so the global batch and the number
    of steps do not depend on the number of processes. ``skip`` drops the first batches of the
    next epoch iterated (a resumed run).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, shuffle: bool = True,
                 num_shards: int = 1, shard: int = 0):
        self.lengths, self.batch_size, self.seed, self.shuffle = lengths, batch_size, seed, shuffle
        self.num_shards, self.shard = num_shards, shard
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._global_batches())

    def _global_batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        window = self.batch_size * 50
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: self.lengths[i], reverse=True)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return [b for b in batches if len(b) >= self.num_shards]  # every process needs a row

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._global_batches()[self.skip :]
        self.skip = 0
        return iter([b[self.shard :: self.num_shards] for b in batches])


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Deterministic batches for evaluation, sorted by length (results are put back in order)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_split(cfg) -> Split:
    """The training rows of a pipeline: a seeded shuffle, then data.max_train_samples of them."""
    d = cfg.data
    return load_split(d, d.train_split, cfg.teacher.num_labels, seed=cfg.seed, limit=d.max_train_samples, shuffle=True)


def eval_split(cfg) -> Split:
    """The evaluation rows of a pipeline, in file order."""
    d = cfg.data
    return load_split(d, d.eval_split, cfg.teacher.num_labels, seed=cfg.seed, limit=d.max_eval_samples)


def validation_split(cfg) -> Split | None:
    """Rows evaluated after each training epoch (data.validation_split), or None."""
    d = cfg.data
    if not d.validation_split:
        return None
    return load_split(d, d.validation_split, cfg.teacher.num_labels, seed=cfg.seed, limit=d.max_validation_samples)
