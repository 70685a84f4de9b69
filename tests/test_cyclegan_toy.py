"""train-cyclegan learns a toy style: on held-out toy-styles images, the cycle error falls and a style
classifier trained on the toy styles assigns most translated A images to B's style, far above its share
for A as it is. The figures of docs/cyclegan.md come from this test (printed with -s)."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.toy import generate_toy_styles
from stylekit.train.classifier import ClassifierConfig, train_classifier

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
STYLES = ("pop", "stripes", "checks")


def test_toy_cyclegan_moves_held_out_content_into_the_b_style(tmp_path):
    toy = tmp_path / "toy"
    generate_toy_styles(toy, size=32, per_style=24, styles=len(STYLES), seed=0)
    # the judge: a small-cnn classifier over the neutral rendering ("plain") and the three styles
    judge_data = tmp_path / "judge-data"
    for label in ("content", *STYLES):
        shutil.copytree(toy / label, judge_data / ("plain" if label == "content" else label))
    judge = tmp_path / "judge"
    train_classifier(ClassifierConfig(data=judge_data, out=judge, epochs=5, batch=16, size=32, seed=0, workers=0))

    out = tmp_path / "cg"
    args = ["train-cyclegan", str(toy / "content"), str(toy / "pop"), "--out", str(out), "--size", "32", "--ngf", "8",
            "--ndf", "8", "--n-blocks", "2", "--epochs", "3", "--decay-epochs", "0", "--lr", "1e-3",
            "--val-fraction", "0.25", "--samples", "3", "--judge", str(judge), "--device", "cpu", "--seed", "0", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    first, last = doc["history"][0], doc["history"][-1]
    print("\ncycle_error_a first/last epoch:", round(first["cycle_error_a"], 4), round(last["cycle_error_a"], 4))
    print("judge_share_b untranslated/translated:", last["judge_share_b_untranslated"], last["judge_share_b"])
    print("judge_style_distance untranslated/translated:", round(last["judge_style_distance_untranslated"], 4),
          round(last["judge_style_distance"], 4))
    assert doc["val_a"] == 6 and len(doc["history"]) == 3
    assert last["cycle_error_a"] < 0.85 * first["cycle_error_a"]
    assert last["judge_share_b"] >= 0.75 and last["judge_share_b_untranslated"] <= 0.25
    assert last["judge_style_distance"] < 0.5 * last["judge_style_distance_untranslated"]
