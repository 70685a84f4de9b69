"""One split function: prepare --split, train-classifier --split and pix2pix pairs agree."""

from collections import Counter
from pathlib import Path

from PIL import Image

from stylekit.configs.prepare import PrepareConfig
from stylekit.data.datasets import load_style_splits
from stylekit.data.manifest import read_manifest
from stylekit.data.pairs import Pair, split_pairs
from stylekit.data.prepare import prepare
from stylekit.data.split import split_counts, split_groups, split_keys


def test_split_keys_exact_seeded_and_stratified():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 1
    keys = [f"{lab}/{i}.png" for i, lab in enumerate(labels)]
    s1 = split_keys(keys, (0.8, 0.1, 0.1), 0, labels)
    assert Counter(zip(labels, s1, strict=True)) == {("a", "train"): 8, ("a", "val"): 1, ("a", "test"): 1,
                                                     ("b", "train"): 1, ("b", "val"): 1, ("b", "test"): 1,
                                                     ("c", "train"): 1}
    assert s1 == split_keys(keys, (0.8, 0.1, 0.1), 0, labels)
    assert len({tuple(split_keys(keys, (0.8, 0.1, 0.1), k, labels)) for k in range(5)}) > 1
    assert Counter(split_keys([str(i) for i in range(7)], (0.5, 0.5), 0)) == {"train": 4, "val": 3}


def test_split_depends_on_keys_not_on_order():
    keys = [f"s/{i:02d}.png" for i in range(20)]
    forward = dict(zip(keys, split_keys(keys, (0.6, 0.2, 0.2), 4), strict=True))
    backward = dict(zip(keys[::-1], split_keys(keys[::-1], (0.6, 0.2, 0.2), 4), strict=True))
    assert forward == backward


def test_split_counts_give_every_positive_split_one_when_possible():
    assert split_counts(4, (0.8, 0.1, 0.1)) == [2, 1, 1]
    assert split_counts(2, (0.8, 0.1, 0.1)) == [2, 0, 0]
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(5, (1.0, 0.0, 0.0)) == [5, 0, 0]
    assert sum(split_counts(13, (0.7, 0.2, 0.1))) == 13


def _class_folders(root: Path) -> Path:
    for c, style in enumerate(("ink", "oil", "pop")):
        (root / style).mkdir(parents=True)
        for i in range(7 + c):
            Image.new("RGB", (12, 12), (40 * c, 20 * i, 90)).save(root / style / f"img{i:02d}.png")
    return root


def test_prepare_and_train_classifier_split_the_same_folder_the_same_way(tmp_path):
    data = _class_folders(tmp_path / "data")
    fractions, seed = (0.6, 0.2, 0.2), 3
    prepare(PrepareConfig(src=data, out=tmp_path / "prepared", split=fractions, seed=seed))
    prepared = {r.path.relative_to(tmp_path / "prepared").as_posix(): r.split for r in read_manifest(tmp_path / "prepared")}
    splits = load_style_splits(data, fractions, seed, check=False)
    on_the_fly = {p.relative_to(data).as_posix(): s for s, items in splits.items.items() for p, _ in items}
    assert prepared == on_the_fly
    assert set(on_the_fly.values()) == {"train", "val", "test"}


def test_pix2pix_split_holds_out_whole_groups_with_the_shared_function():
    pairs = [Pair(Path(f"A/{g}.png"), Path(f"B/{s}/{g}.png"), s, f"A/{g}") for g in range(10) for s in ("x", "y")]
    train, val = split_pairs(pairs, 0.2, seed=5)
    names = split_groups([p.group for p in pairs], (0.8, 0.2), 5)
    assert {p.group for p in val} == {p.group for p, n in zip(pairs, names, strict=True) if n == "val"}
    assert len({p.group for p in val}) == 2 and not {p.group for p in val} & {p.group for p in train}
