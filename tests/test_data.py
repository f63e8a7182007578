import textwrap

import pytest

from pinbench.tasks.classification.data import get_dataset, load_dataset_file, read_split, registry
from pinbench.errors import ConfigError, DataError

EXPECTED_CLASSES = {"sst-2": 2, "yelp-2": 2, "mr": 2, "cr": 2, "sst-5": 5, "yelp-5": 5, "agnews": 4,
                    "subj": 2, "trec": 6, "yahoo": 10, "dbpedia": 14}


def test_registry_has_every_paper_dataset():
    for name, classes in EXPECTED_CLASSES.items():
        assert get_dataset(name).num_classes == classes


# The datasets the shared data holds (its README's table); the held-out ones (subj, trec, yahoo)
# are not there and are read from files built below instead.
SHARED = ["agnews", "cr", "dbpedia", "mr", "sst-2", "sst-5", "yelp-2", "yelp-5"]
HELD_OUT = sorted(set(EXPECTED_CLASSES) - set(SHARED))


@pytest.mark.parametrize("name", SHARED)
def test_registry_dataset_with_files_loads(name, few_shot_dir):
    from conftest import shared_data

    shared_data("few-shot", name)  # a missing dataset fails in CI
    spec = get_dataset(name)
    for split in ("train", "dev"):
        data = read_split(spec, split, 13, few_shot_dir)
        # LM-BFF few-shot splits hold 16 examples of every class.
        assert len(data) == 16 * spec.num_classes
        assert sorted(set(data.labels)) == list(range(spec.num_classes))
        assert sum(bool(t) for t in data.texts) >= len(data) - 1  # cr has one empty review
    if (few_shot_dir / name / "16-13" / "test.tsv").is_file():
        assert set(read_split(spec, "test", 13, few_shot_dir).labels) == set(range(spec.num_classes))


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_dataset_reads_its_lm_bff_layout(name, tmp_path):
    """subj, trec and yahoo are not in the shared data: a split in their layout (16 per class,
    the registry's text column) is built here and must load with every class."""
    spec = get_dataset(name)
    folder = tmp_path / name / "16-13"
    folder.mkdir(parents=True)
    rows = [f"text {i} of class {c}\t{c}" for c in range(spec.num_classes) for i in range(16)]
    (folder / "train.tsv").write_text(f"{spec.text_column or 'sentence'}\tlabel\n" + "\n".join(rows) + "\n")
    data = read_split(spec, "train", 13, tmp_path)
    assert len(data) == 16 * spec.num_classes == 16 * EXPECTED_CLASSES[name]
    assert data.labels == [c for c in range(spec.num_classes) for _ in range(16)]
    assert data.texts[17] == "text 1 of class 1"


def test_agnews_reads_the_text_column(few_shot_dir):
    data = read_split("agnews", "train", 42, few_shot_dir)
    assert len(data) == 64 and len(data.texts[0]) > 20


def test_missing_test_file_names_the_file(few_shot_without_test):
    with pytest.raises(DataError, match=r"sst-2/16-13/test\.tsv' does not exist"):
        read_split("sst-2", "test", 13, few_shot_without_test)
    assert len(read_split("sst-2", "dev", 13, few_shot_without_test)) == 32  # the split's other files load


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'sst-3'.*sst-2"):
        get_dataset("sst-3")


def _write_dataset(tmp_path, rows, header="sentence\tlabel", yaml_extra=""):
    folder = tmp_path / "mydata" / "16-7"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(header + "\n" + "".join(r + "\n" for r in rows))
    spec = tmp_path / "mydata.yaml"
    spec.write_text(textwrap.dedent(f"""\
        mydata:
          verbalizers: [" bad", " good", " okay"]
          template: "{{input}} Verdict: {{prompt}} {{mask}}"
          label_names: [negative, positive, neutral]
        {yaml_extra}"""))
    return spec


def test_user_defined_dataset_from_yaml(tmp_path):
    spec_file = _write_dataset(tmp_path, ["loved it\t1", "hated it\t0", "fine\t2"])
    specs = load_dataset_file(spec_file)
    assert specs["mydata"].num_classes == 3
    assert "mydata" in registry()
    data = read_split("mydata", "train", 7)  # data_dir defaults to the YAML file's folder
    assert data.texts == ["loved it", "hated it", "fine"]
    assert data.labels == [1, 0, 2]
    assert get_dataset("mydata").label_names == ("negative", "positive", "neutral")
    registry().pop("mydata")


def test_unknown_label_names_file_and_line(tmp_path):
    spec_file = _write_dataset(tmp_path, ["loved it\t1", "what\t7"])
    spec = load_dataset_file(spec_file, register=False)["mydata"]
    with pytest.raises(DataError, match=r"train\.tsv' line 3: unknown label 7"):
        read_split(spec, "train", 7)


def test_non_integer_label(tmp_path):
    spec = load_dataset_file(_write_dataset(tmp_path, ["x\tpositive"]), register=False)["mydata"]
    with pytest.raises(DataError, match=r"line 2: label 'positive' is not an integer"):
        read_split(spec, "train", 7)


def test_empty_split_names_the_file(tmp_path):
    spec = load_dataset_file(_write_dataset(tmp_path, []), register=False)["mydata"]
    with pytest.raises(DataError, match=r"train\.tsv' has a header but no examples"):
        read_split(spec, "train", 7)


def test_missing_column_names_the_file(tmp_path):
    spec = load_dataset_file(_write_dataset(tmp_path, ["x\t1"], header="review\tlabel"), register=False)["mydata"]
    with pytest.raises(DataError, match=r"train\.tsv' has no text column"):
        read_split(spec, "train", 7)


@pytest.mark.parametrize("extra, message", [
    ("  colour: red", r"unknown key\(s\) \['colour'\]"),
    ("  template: \"{input} {prompt}\"", r"must contain each of \{input\}, \{prompt\}, \{mask\}"),
    ("  causal_template: \"{mask} {input} {prompt}\"", r"must end with \{mask\}"),
    ("  verbalizers: great", "'verbalizers' must be a non-empty list of strings"),
    ("  label_names: [a, b]", "'label_names' has 2 entries but 'verbalizers' has 3"),
])
def test_bad_dataset_yaml_names_key_and_file(tmp_path, extra, message):
    spec_file = _write_dataset(tmp_path, ["x\t1"])
    text = spec_file.read_text().replace('  label_names: [negative, positive, neutral]\n', "")
    # Later keys override earlier ones in YAML mappings only when unique; rebuild the entry instead.
    lines = [l for l in text.splitlines() if not l.startswith("  " + extra.strip().split(":")[0] + ":")]
    spec_file.write_text("\n".join(lines) + "\n" + extra + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_dataset_file(spec_file, register=False)
    assert "mydata.yaml" in str(info.value) and "mydata" in str(info.value)


def test_masked_only_template_needs_causal_template(tmp_path):
    spec_file = tmp_path / "d.yaml"
    spec_file.write_text('news:\n  verbalizers: ["a", "b"]\n  template: "{mask} {prompt} {input}"\n')
    with pytest.raises(ConfigError, match="add a 'causal_template'"):
        load_dataset_file(spec_file, register=False)


def test_missing_dataset_file():
    with pytest.raises(ConfigError, match="dataset file 'nope.yaml' does not exist"):
        load_dataset_file("nope.yaml")
