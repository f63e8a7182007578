"""Style-transfer data: Yelp sentiment and Shakespeare, in the layouts RLPrompt ships them
(docs/tasks/style-transfer.md#1-data; ``../shared/data/README.md``).

A direction ``"0_to_1"`` rewrites sentences of style 0 into style 1. Every split holds sentences of
the source style; the test split also holds references in the target style where the data has
them (Yelp's ``sentiment.ref.<src>.clean``; Shakespeare's parallel test halves).

Yelp has no train split here (the authors' ``sentiment.train.*`` is not distributed with the data):
the training inputs are the source-style dev lines after the first ``dev_size`` (16), which stay
the dev split, as RLPrompt holds its 16 dev sentences out (``tst_helpers.py``: the first 16 lines).
That substitution (other sentences than the authors') is stated in reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...data_locations import explicit_folder, locate
from ...errors import ConfigError, DataError
from ...io import parse_label, read_tsv_rows, read_utf8

DIRECTIONS = ("0_to_1", "1_to_0")
YELP_DEV_SIZE = 16
"""Yelp's dev split: the first 16 lines of the source-style dev file (RLPrompt's tst_helpers.py)."""


@dataclass(frozen=True)
class StyleDataset:
    """A style-transfer corpus: its two styles and how its outputs are compared."""

    name: str
    styles: tuple[str, str]
    """Style names of labels 0 and 1."""
    lower_outputs: bool
    """Lowercase generated outputs (RLPrompt: true for Yelp, whose data is lowercase)."""
    description: str


DATASETS: dict[str, StyleDataset] = {d.name: d for d in (
    StyleDataset("yelp", ("negative", "positive"), True, "Yelp review sentences, sentiment (Shen et al. 2017)"),
    StyleDataset("shakespeare", ("shakespearean", "modern"), False,
                 "Shakespeare's plays and modern paraphrases, 100-shot (Xu et al. 2012; RLPrompt's splits)"),
)}


def get_dataset(name: str) -> StyleDataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown style-transfer dataset '{name}'; known: {sorted(DATASETS)}")
    return DATASETS[name]


def parse_direction(direction: str) -> tuple[int, int]:
    """``"0_to_1"`` -> (source style, target style)."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"style-transfer direction '{direction}' is not one of {list(DIRECTIONS)}")
    return int(direction[0]), int(direction[-1])


@dataclass(frozen=True)
class StyleSplit:
    """Source-style sentences of one split, with their target-style references (test only)."""

    inputs: tuple[str, ...]
    references: tuple[str, ...] | None
    source: int
    target: int


def read_lines(file: Path) -> list[str]:
    """A one-sentence-per-line file (Yelp), stripped, blank lines dropped."""
    if not file.is_file():
        raise DataError(f"style-transfer file '{file}' does not exist")
    lines = [line.strip() for line in read_utf8(file, "style-transfer file", DataError).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"style-transfer file '{file}' is empty")
    return lines


def read_tsv(file: Path) -> list[tuple[str, int]]:
    """(text, label) rows of a ``text<TAB>label`` file (Shakespeare). The files are CSV-quoted
    (a text with a quote is written "..."" ..."), read so, line by line and exactly (RLPrompt's
    loader reads them with pandas' default quoting); a text such as "NA" stays text."""
    if not file.is_file():
        raise DataError(f"style-transfer file '{file}' does not exist")
    header, rows = read_tsv_rows(file, "style-transfer file", "csv", DataError)
    if not {"text", "label"} <= set(header):
        raise DataError(f"style-transfer file '{file}' needs columns 'text' and 'label', has {header}")
    t, y = header.index("text"), header.index("label")
    out = []
    for line, fields in rows:
        try:
            out.append((fields[t].strip(), parse_label(fields[y])))
        except ValueError:
            raise DataError(f"style-transfer file '{file}' line {line}: label {fields[y]!r} is not an integer") from None
    return out


def _tsv(file: Path, label: int) -> list[str]:
    texts = [t for t, v in read_tsv(file) if v == label]
    if not texts:
        raise DataError(f"style-transfer file '{file}' has no rows with label {label}")
    return texts


def _dataset_rel(dataset: str, split_seed: int) -> str:
    return "yelp/clean" if dataset == "yelp" else f"shakespeare/100-shot/100-{split_seed}"


def style_root(dataset: str, data_dir: str | Path | None, split_seed: int) -> Path:
    """The folder holding ``yelp/`` and ``shakespeare/``: ``data_dir`` (or the style-transfer folder
    of a data root given there), else the first place of pinbench's data rule that has the dataset
    (``pinbench.data_locations``)."""
    rel = _dataset_rel(dataset, split_seed)
    if data_dir is None:
        return locate("style-transfer", rel, dataset, what=f"style-transfer dataset '{dataset}'")
    root = explicit_folder("style-transfer", data_dir, rel)
    if not root.is_dir():
        raise DataError(f"style-transfer data directory '{data_dir}' does not exist")
    return root


def dataset_dir(dataset: str, data_dir: str | Path | None, split_seed: int) -> Path:
    """Where a dataset's files are: ``<root>/yelp/clean`` or ``<root>/shakespeare/100-shot/100-<seed>``
    (``style_root`` finds the root)."""
    return style_root(dataset, data_dir, split_seed) / _dataset_rel(dataset, split_seed)


def read_split(dataset: str, direction: str, split: str, data_dir: str | Path | None, *,
               split_seed: int = 100, dev_size: int | None = 16, test_size: int | None = None) -> StyleSplit:
    """One split of one direction. ``dev_size``: Yelp's held-out dev sentences (the rest of the dev
    file is the training pool); ``test_size``: only the first n test sentences (a cheaper run)."""
    get_dataset(dataset)
    source, target = parse_direction(direction)
    folder = dataset_dir(dataset, data_dir, split_seed)
    references = None
    if dataset == "yelp":
        if split in ("train", "dev"):
            pool = read_lines(folder / f"sentiment.dev.{source}.clean")
            n = dev_size or YELP_DEV_SIZE
            if len(pool) <= n:
                raise DataError(f"style-transfer file '{folder / f'sentiment.dev.{source}.clean'}' has "
                                f"{len(pool)} lines; Yelp needs more than dev_size={n} (the rest trains)")
            inputs = pool[n:] if split == "train" else pool[:n]
        elif split == "test":
            inputs = read_lines(folder / f"sentiment.test.{source}.clean")
            references = read_lines(folder / f"sentiment.ref.{source}.clean")
        else:
            raise ConfigError(f"style-transfer has no split '{split}' (train, dev, test)")
    else:
        if split not in ("train", "dev", "test"):
            raise ConfigError(f"style-transfer has no split '{split}' (train, dev, test)")
        inputs = _tsv(folder / f"{split}.tsv", source)
        if split == "dev" and dev_size:
            inputs = inputs[:dev_size]
        if split == "test":  # the halves are parallel: line i of one style rewrites line i of the other
            references = _tsv(folder / "test.tsv", target)
    if references is not None and len(references) != len(inputs):
        raise DataError(f"style-transfer {dataset} {direction}: {len(inputs)} test inputs but "
                        f"{len(references)} references in {folder}")
    if split == "test" and test_size:
        inputs = inputs[:test_size]
        references = None if references is None else references[:test_size]
    return StyleSplit(tuple(inputs), None if references is None else tuple(references), source, target)
