"""pneumolib.studies: sentences about the committed framing and resolution studies follow their numbers."""

from pneumolib import studies as S


def _framing(name, val, test, recall, narrow, wide):
    return name, {
        "val_macro_f1": val,
        "test_macro_f1": test,
        "test_normal_recall": recall,
        "normal_error_by_aspect": {"narrow": narrow, "middle": (narrow + wide) / 2, "wide": wide},
    }


def test_framing_sentences_follow_the_study():
    study = {
        "chosen_on_validation": "resize",
        "framings": dict(
            [_framing("crop", 0.63, 0.70, 0.80, 0.04, 0.34), _framing("resize", 0.75, 0.71, 0.56, 0.20, 0.73)]
        ),
    }
    text = " ".join(S.framing_findings(study))
    assert "chose resize" in text and "higher macro-F1 than crop" in text and "lower normal recall" in text
    assert "steepest gradient (the most use of the framing cue) is resize's" in text
    assert "Validation preferred the framing that leans most on the shortcut" in text
    # the other way round: the chosen framing has the flatter gradient and the better recall
    study["framings"]["resize"] = _framing("resize", 0.75, 0.68, 0.90, 0.10, 0.15)[1]
    text = " ".join(S.framing_findings(study))
    assert "lower macro-F1 than crop" in text and "higher normal recall" in text
    assert "steepest gradient (the most use of the framing cue) is crop's" in text
    assert "leans most on the shortcut" not in text and "Best test macro-F1: crop" in text


def test_framing_without_a_study_says_how_to_make_one():
    (sentence,) = S.framing_findings(None)
    assert "not available" in sentence and "scripts/framing_study.py" in sentence


def _resolution(rows, chosen=64, fits=False):
    """A resolution study: rows of (model, size, val, test, seconds), 3 seeds each."""
    out = [
        dict(model=m, size=s, seeds=[0, 1, 2], val_macro_f1=v, test_macro_f1=t, train_s=sec, runs=[])
        for m, s, v, t, sec in rows
    ]
    why = "best validation macro-F1 within" if fits else "no size keeps the first run within"
    return {"rows": out, "choice": {"chosen": chosen, "why": why, "per_size": {str(chosen): {"projected_run_min": 94}}}}


def test_resolution_findings_follow_validation_and_flag_a_test_only_gain():
    study = _resolution([("simple_cnn", 64, 0.698, 0.682, 72), ("simple_cnn", 96, 0.695, 0.710, 160)])
    text = " ".join(S.resolution_findings(study))
    assert "validation macro-F1 0.698 at 64 px, 0.695 at 96 px" in text and "1.2 / 2.7 min" in text
    assert "no size above 64 px raised validation macro-F1" in text
    assert "96 px gave simple_cnn its best macro-F1 (0.682 at 64 px -> 0.710)" in text
    assert "Validation and test disagree on the best size for simple_cnn" in text
    assert "the cheapest is kept) chose 64 px (projected first run 94 min)" in text
    # the other way round: more pixels help on validation and test alike, and the size fits the target
    study = _resolution(
        [("simple_cnn", 64, 0.698, 0.682, 72), ("simple_cnn", 96, 0.730, 0.700, 160)], chosen=96, fits=True
    )
    text = " ".join(S.resolution_findings(study))
    assert "96 px raised validation macro-F1 the most (0.698 -> 0.730)" in text
    assert "disagree" not in text and "no size above" not in text
    assert "fits the time target) chose 96 px" in text
    # test falls with more pixels
    study = _resolution([("resnet18", 64, 0.80, 0.76, 240), ("resnet18", 128, 0.78, 0.74, 250)])
    study["rows"][0]["note"] = "CIFAR stem at low resolution"
    text = " ".join(S.resolution_findings(study))
    assert "no size above 64 px raised resnet18's macro-F1" in text
    assert "4.0 / 4.2 min (64 px: CIFAR stem at low resolution)." in text


def test_resolution_without_a_study_says_how_to_make_one():
    (sentence,) = S.resolution_findings(None)
    assert "not available" in sentence and "scripts/resolution_study.py" in sentence


def _tta_record(profile_hash, rows):
    """A scripts/tta_check.py record for three classes: name -> (val plain, val tta, test plain, test tta)."""
    out = {}
    for name, (vp, vt, tp, tt) in rows.items():
        out[name] = {"plain": {"val": vp, "test": tp}, "tta": {"val": vt, "test": tt}, "keep_tta": vt > vp}
    return {
        "profile": "cpu",
        "profile_hash": profile_hash,
        "seeds": 3,
        "tasks": {"three_class": {"metric": "macro-F1", "rows": out}},
    }


def test_framing_check_lets_validation_decide_per_model_with_the_same_tta_rule_on_both_sides():
    before = _tta_record("aaa", {"resnet18": (0.80, 0.81, 0.76, 0.77), "simple_cnn": (0.70, 0.69, 0.68, 0.70)})
    after = _tta_record("bbb", {"resnet18": (0.75, 0.74, 0.73, 0.70), "simple_cnn": (0.72, 0.73, 0.66, 0.65)})
    check = S.framing_check(before, after, framings=("crop", "crop80"))
    r18, cnn = (check["tasks"]["three_class"]["rows"][m] for m in ("resnet18", "simple_cnn"))
    assert r18["used"] == {"before": "tta", "after": "plain"} and r18["val"] == {"before": 0.81, "after": 0.75}
    assert r18["val_change"] == -1 and cnn["val_change"] == 1 and cnn["test"] == {"before": 0.68, "after": 0.65}
    text = " ".join(S.framing_check_findings(check))
    assert "A full cpu run with crop80 instead of crop (all models, 3 seeds)" in text
    assert "crop80 lowered the validation macro-F1 of resnet18 (0.810 -> 0.750)" in text
    assert "raised the validation macro-F1 of simple_cnn (0.700 -> 0.730)" in text
    assert "rejects it for resnet18" in text and "The cpu profile keeps crop." in text
    # the other way round: every model rises on validation
    after = _tta_record("bbb", {"resnet18": (0.82, 0.80, 0.73, 0.70), "simple_cnn": (0.72, 0.73, 0.66, 0.65)})
    text = " ".join(S.framing_check_findings(S.framing_check(before, after, framings=("crop", "crop80"))))
    assert "Validation agrees for every model" in text and "rejects" not in text


def test_framing_check_without_a_check_says_how_to_make_one():
    (sentence,) = S.framing_check_findings(None)
    assert "not available" in sentence and "scripts/framing_check.py" in sentence
