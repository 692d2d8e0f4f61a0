"""Run configuration: config.py defaults, flag overrides, invalid values (exit 2, one line)."""
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from src import paths
from src.settings import REPOSITORY, default_config, load_config_module, parse_run_config

config = load_config_module(REPOSITORY / "config.py")  # the shipped defaults

# tests/fixed_config.py holds the reference's defaults (docs/METHOD.md §2)
REFERENCE_PARAMS = load_config_module().params


def test_the_shipped_defaults_equal_the_reference():
    module = config
    cfg = default_config(module)
    for name, value in REFERENCE_PARAMS.items():
        assert getattr(cfg, name) == value, name
    assert module.TRAINSETS == ["Cityscapes+COCO"]
    assert module.VALSETS == ["LostAndFound", "Fishyscapes", "RoadAnomaly21", "RoadObstacle21",
                              "LostAndFound-testNoKnown"]
    assert module.MODELS[:2] == ["DeepLabV3+_WideResNet38", "DualGCNNet_res50"]
    assert (cfg.TRAINSET, cfg.VALSET, cfg.MODEL) == ("Cityscapes+COCO", "LostAndFound",
                                                     "DeepLabV3+_WideResNet38")
    assert cfg.fishyscapes_split == "Static"


@pytest.mark.parametrize("script, argv, field, value", [
    ("ood_training", ["-train", "Cityscapes+COCO"], "TRAINSET", "Cityscapes+COCO"),
    ("ood_training", ["-model", "DualGCNNet_res50"], "MODEL", "DualGCNNet_res50"),
    ("ood_training", ["--MODEL", "DualGCNNet_res50"], "MODEL", "DualGCNNet_res50"),
    ("ood_training", ["-epoch", "3"], "training_starting_epoch", 3),
    ("ood_training", ["-nepochs", "4"], "num_training_epochs", 4),
    ("ood_training", ["-alpha", "0.5"], "pareto_alpha", 0.5),
    ("ood_training", ["-lr", "2e-4"], "learning_rate", 2e-4),
    ("ood_training", ["-crop", "256"], "crop_size", 256),
    ("ood_training", ["-batch", "2"], "batch_size", 2),
    ("ood_training", ["--ood_subsampling_factor", "0.25"], "ood_subsampling_factor", 0.25),
    ("ood_training", ["--cityscapes_root", "/cs"], "cityscapes_root", "/cs"),
    ("ood_training", ["--coco_root", "/coco/2017"], "coco_root", "/coco/2017"),
    ("ood_training", ["--io_root", "/io"], "io_root", "/io"),
    ("ood_training", ["--init_ckpt", "/w.pth"], "init_ckpt", "/w.pth"),
    ("ood_training", ["--weights_dir", "/w"], "weights_dir", "/w"),
    ("ood_training", ["--seed", "7"], "seed", 7),
    ("ood_training", ["--no_init_ckpt"], "no_init_ckpt", True),
    ("ood_training", ["--coco_background_void"], "coco_background_void", True),
    ("ood_training", ["--amp", "bf16"], "amp", "bf16"),
    ("meta_classification", ["-val", "Fishyscapes"], "VALSET", "Fishyscapes"),
    ("meta_classification", ["-epoch", "0"], "val_epoch", 0),
    ("meta_classification", ["--val_epoch", "4"], "val_epoch", 4),
    ("meta_classification", ["-threshold", "0.5"], "entropy_threshold", 0.5),
    ("meta_classification", ["-prepare"], "pre_process", True),
    ("meta_classification", ["-segment"], "segment_search", True),
    ("meta_classification", ["-removal"], "fp_removal", True),
    ("meta_classification", ["--lostandfound_root", "/laf"], "lostandfound_root", "/laf"),
    ("meta_classification", ["--fishyscapes_root", "/fs"], "fishyscapes_root", "/fs"),
    ("meta_classification", ["--fishyscapes_split", "LostAndFound"], "fishyscapes_split", "LostAndFound"),
    ("meta_classification", ["--segment_workers", "3"], "segment_workers", 3),
    ("meta_classification", ["--cv", "image"], "cv", "image"),
    ("meta_classification", ["--store_probs"], "store_probs", True),
    ("meta_classification", ["--amp", "bf16"], "amp", "bf16"),
    ("evaluation", ["--store_probs"], "store_probs", True),
    ("evaluation", ["--store_logits"], "store_logits", True),
    ("evaluation", ["--amp", "bf16"], "amp", "bf16"),
    ("evaluation", ["-pixel"], "pixel_eval", True),
    ("evaluation", ["-segment"], "segment_eval", True),
    ("evaluation", ["-miou"], "miou", True),
    ("evaluation", ["-smiyc"], "smiyc_eval", True),
    ("evaluation", ["--submission"], "submission", True),
    ("evaluation", ["--roadobstacle21_split", "test"], "roadobstacle21_split", "test"),
    ("evaluation", ["--score", "maxlogit"], "score", "maxlogit"),
    ("evaluation", ["--cv", "kfold"], "cv", "kfold"),
    ("evaluation", ["--folds", "3"], "folds", 3),
    ("evaluation", ["--segment_workers", "3"], "segment_workers", 3),
    ("evaluation", ["--cityscapes_root", "/cs"], "cityscapes_root", "/cs"),
    ("meta_classification", ["--folds", "3"], "folds", 3),
    ("evaluation", ["-alpha", "0.0"], "pareto_alpha", 0.0),
])
def test_each_flag_reaches_the_configuration(script, argv, field, value):
    cfg = parse_run_config(script, argv)
    assert getattr(cfg, field) == value
    # everything else keeps config.py's value
    untouched = {k: v for k, v in vars(default_config()).items() if k != field}
    assert {k: getattr(cfg, k) for k in untouched} == untouched


def test_flags_do_not_touch_the_config_module():
    before = (config.MODEL, dict(config.params))
    parse_run_config("ood_training", ["-model", "DualGCNNet_res50", "-alpha", "0.3"], module=config)
    assert (config.MODEL, config.params) == before


@pytest.mark.parametrize("script, argv, message", [
    ("ood_training", ["-alpha", "1.5"], "-alpha/--pareto_alpha: expected a number in [0, 1], got 1.5"),
    ("ood_training", ["-alpha", "-0.1"], "-alpha/--pareto_alpha: expected a number in [0, 1]"),
    ("ood_training", ["-alpha", "x"], "-alpha/--pareto_alpha: expected a number in [0, 1], got 'x'"),
    ("ood_training", ["-lr", "0"], "-lr/--learning_rate: expected a number > 0, got 0"),
    ("ood_training", ["-lr=-1e-5"], "-lr/--learning_rate: expected a number > 0"),
    ("ood_training", ["-crop", "0"], "-crop/--crop_size: expected an integer > 0"),
    ("ood_training", ["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    ("ood_training", ["--seed", "x"], "--seed: expected an integer >= 0, got 'x'"),
    ("ood_training", ["-model", "ResNet"], "invalid choice: 'ResNet' (choose from "
                                           "'DeepLabV3+_WideResNet38', 'DualGCNNet_res50'"),
    ("ood_training", ["-train", "ImageNet"], "invalid choice: 'ImageNet' (choose from 'Cityscapes+COCO')"),
    ("ood_training", ["-epoch", "2", "--no_init_ckpt"], "--no_init_ckpt only applies to -epoch 0"),
    ("meta_classification", ["-threshold", "1"], "-threshold/--entropy_threshold: expected a number in (0, 1)"),
    ("meta_classification", ["-threshold", "0"], "-threshold/--entropy_threshold: expected a number in (0, 1)"),
    ("meta_classification", ["-val", "Cityscapes"], "invalid choice: 'Cityscapes' (choose from "
                                                    "'LostAndFound', 'Fishyscapes', 'RoadAnomaly21', "
                                                    "'RoadObstacle21', 'LostAndFound-testNoKnown')"),
    ("meta_classification", ["--segment_workers", "0"], "--segment_workers: expected an integer > 0"),
    ("evaluation", ["--score", "random"], "invalid choice: 'random'"),
    ("evaluation", ["--submission_name", "a/b"], "--submission_name: expected a folder name of letters, digits "
                                                 "and . _ + -, got 'a/b'"),
])
def test_invalid_values_exit_2_with_one_line(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_run_config(script, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith(f"{script}.py: error:")


def test_invalid_value_in_config_py_is_reported(capsys):
    bad = types.ModuleType("config")
    vars(bad).update({k: v for k, v in vars(config).items() if not k.startswith("__")})
    bad.params = dict(config.params, pareto_alpha=2.0)
    bad.MODEL = "UNet"
    with pytest.raises(SystemExit) as exc:
        parse_run_config("ood_training", [], module=bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "pareto_alpha (-alpha/--pareto_alpha): expected a number in [0, 1], got 2.0" in err
    assert "MODEL (-model/--MODEL): 'UNet' is not one of" in err


def _config_module(**variables):
    """A copy of config.py with `variables` replaced; `params` is a dict of the changed keys,
    a key set to None is removed."""
    module = types.ModuleType("config")
    vars(module).update({k: v for k, v in vars(config).items() if not k.startswith("__")})
    params = dict(config.params, **variables.pop("params", {}))
    module.params = {k: v for k, v in params.items() if v is not None}
    vars(module).update(variables)
    return module


def _one_line_error(script, argv, module, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_run_config(script, argv, module=module)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{script}.py: error:")
    return err


def test_a_config_py_value_names_its_place_and_is_checked_only_where_used(capsys):
    bad = _config_module(params={"entropy_threshold": 1.5}, SEED=-1)
    err = _one_line_error("meta_classification", [], bad, capsys)
    assert ("entropy_threshold (-threshold/--entropy_threshold): expected a number in (0, 1), got 1.5 "
            "(from config.py params['entropy_threshold'])") in err
    assert "seed (--seed): expected an integer >= 0, got -1 (from config.py SEED)" in err
    # ood_training has no -threshold; a flag replaces the bad value
    assert parse_run_config("ood_training", ["--seed", "3"], module=bad).seed == 3
    assert parse_run_config("meta_classification", ["-threshold", "0.5", "--seed", "0"], module=bad).entropy_threshold == 0.5


def test_a_missing_or_unknown_config_py_setting_is_one_line(capsys):
    bad = _config_module(params={"entropy_threshold": None, "entropy_treshold": 0.7})
    err = _one_line_error("ood_training", [], bad, capsys)
    assert "config.py lacks params['entropy_threshold']; config.py has unknown params['entropy_treshold']" in err
    del bad.SEED
    assert "config.py lacks params['entropy_threshold'], SEED" in _one_line_error("evaluation", [], bad, capsys)


@pytest.mark.parametrize("script", ["ood_training", "meta_classification", "evaluation"])
def test_help_lists_flags_with_defaults(script):
    out = subprocess.run([sys.executable, f"{script}.py", "-h"], capture_output=True, text=True,
                         cwd=paths_repo(), env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    assert "-model MODEL, --model MODEL, --MODEL MODEL" in out.stdout
    assert "(default: DeepLabV3+_WideResNet38)" in out.stdout
    assert "-alpha PARETO_ALPHA, --alpha PARETO_ALPHA, --pareto_alpha PARETO_ALPHA" in out.stdout


def paths_repo():
    return Path(__file__).resolve().parents[1]


def test_output_layout_names():
    cfg = parse_run_config("meta_classification", ["--io_root", "/io", "-val", "LostAndFound"])
    assert paths.checkpoint_path(cfg, 4) == ("/io/meta_ood_DeepLabV3+_WideResNet38/weights/"
                                             "DeepLabV3+_WideResNet38_epoch_4_alpha_0.9.pth")
    assert paths.probs_file(cfg, 0, 3) == "/io/meta_ood_DeepLabV3+_WideResNet38/laf_eval/probs/baseline/probs3.hdf5"
    assert paths.probs_dir(cfg, 1).endswith("laf_eval/probs/epoch_1_alpha_0.9")
    assert paths.metrics_file(cfg, 1, 7).endswith("laf_eval/metaseg_io/metrics/epoch_1_alpha_0.9_t0.7/0007.npz")
    assert paths.components_file(cfg, 0, 12, gt=True).endswith(
        "laf_eval/metaseg_io/components/baseline_t0.7_gt/0012.npz")
    assert paths.labels_file(cfg, 1, 3).endswith("laf_eval/compact/epoch_1_alpha_0.9/labels/0003.npz")
    assert paths.score_map_file(cfg, 0, 3).endswith("laf_eval/compact/baseline/score_entropy/0003.npz")
    assert paths.image_histograms_file(cfg, 0, 3).endswith(
        "laf_eval/compact/baseline/histograms_entropy_bins10000/0003.npz")
    # a network under bf16 autocast gives other numbers: its outputs have other names
    bf16 = parse_run_config("evaluation", ["--io_root", "/io", "-val", "LostAndFound", "--amp", "bf16"])
    assert paths.probs_dir(bf16, 0).endswith("laf_eval/probs/baseline_bf16")
    assert paths.metrics_file(bf16, 1, 7).endswith("metaseg_io/metrics/epoch_1_alpha_0.9_bf16_t0.7/0007.npz")
    assert paths.miou_file(bf16, 0).endswith("miou/cityscapes_val_baseline_bf16.json")


@pytest.mark.parametrize("script, argv, field, value", [
    ("ood_training", ["--model", "DualGCNNet_res50"], "MODEL", "DualGCNNet_res50"),
    ("ood_training", ["--alpha", "0.5"], "pareto_alpha", 0.5),
    ("ood_training", ["--epoch", "2"], "training_starting_epoch", 2),
    ("ood_training", ["--nepochs", "3"], "num_training_epochs", 3),
    ("ood_training", ["--lr", "1e-4"], "learning_rate", 1e-4),
    ("ood_training", ["--crop", "256"], "crop_size", 256),
    ("ood_training", ["--train", "Cityscapes+COCO"], "TRAINSET", "Cityscapes+COCO"),
    ("meta_classification", ["--metaseg_prepare"], "pre_process", True),
    ("meta_classification", ["--prepare"], "pre_process", True),
    ("meta_classification", ["--segment"], "segment_search", True),
    ("meta_classification", ["--removal"], "fp_removal", True),
    ("meta_classification", ["--val", "Fishyscapes"], "VALSET", "Fishyscapes"),
    ("meta_classification", ["--epoch", "0"], "val_epoch", 0),
    ("meta_classification", ["--threshold", "0.4"], "entropy_threshold", 0.4),
    ("evaluation", ["-train", "Cityscapes+COCO"], "TRAINSET", "Cityscapes+COCO"),
    ("evaluation", ["--epoch", "4"], "val_epoch", 4),
    ("evaluation", ["--segment"], "segment_eval", True),
    ("evaluation", ["--pixel"], "pixel_eval", True),
    ("evaluation", ["--ckpt", "/w/meta_ood_dlv3.pth", "-epoch", "4"], "ckpt", "/w/meta_ood_dlv3.pth"),
])
def test_conventional_long_forms_and_the_references_flags(script, argv, field, value):
    assert getattr(parse_run_config(script, argv), field) == value


@pytest.mark.parametrize("script, argv, message", [
    ("meta_classification", ["--val", "0"], "invalid choice: '0'"),  # not an abbreviation of --val_epoch
    ("meta_classification", ["--val_ep", "0"], "unrecognized arguments: --val_ep"),
    ("ood_training", ["--pareto", "0.5"], "unrecognized arguments: --pareto"),
    ("evaluation", ["--bins", "1"], "--bins: expected an integer >= 2, got 1"),
    ("evaluation", ["--folds", "1"], "--folds: expected an integer >= 2, got 1"),
    ("evaluation", ["--ckpt", "x.pth", "-epoch", "0"], "--ckpt names the evaluated OoD-trained checkpoint"),
])
def test_abbreviations_and_invalid_combinations_exit_2(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_run_config(script, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_io_root_none_in_config_py_is_one_line(capsys):
    err = _one_line_error("evaluation", [], _config_module(IO_ROOT=None), capsys)
    assert "io_root (--io_root): expected a path (a string), got None (from config.py IO_ROOT)" in err


def test_a_setting_declared_once_reaches_help_validation_and_the_run_configuration(monkeypatch, capsys):
    from src import settings
    new = settings.Setting("smoothing", "label smoothing of the loss", (settings.TRAIN,), ("--smoothing",),
                           "params", check=settings.fraction_value)
    monkeypatch.setattr(settings, "_DECLARED", settings._DECLARED + [new])
    module = _config_module(params={"smoothing": 0.1})
    assert parse_run_config("ood_training", [], module=module).smoothing == 0.1
    assert parse_run_config("ood_training", ["--smoothing", "0.2"], module=module).smoothing == 0.2
    help_text = settings.build_parser("ood_training", default_config(module)).format_help()
    assert "--smoothing SMOOTHING" in help_text and "label smoothing of the loss (default: 0.1)" in help_text
    assert "smoothing (--smoothing): expected a number in [0, 1], got 2 (from config.py params['smoothing'])" in \
        _one_line_error("ood_training", [], _config_module(params={"smoothing": 2}), capsys)
    assert "config.py lacks params['smoothing']" in _one_line_error("ood_training", [], _config_module(), capsys)
    with pytest.raises(SystemExit):  # not a flag of the scripts it was not declared for
        parse_run_config("evaluation", ["--smoothing", "0.2"], module=module)


def test_a_config_file_elsewhere_is_read_and_a_broken_one_is_one_line(tmp_path, capsys):
    own = tmp_path / "my_config.py"
    own.write_text((REPOSITORY / "config.py").read_text().replace('IO_ROOT = "/home/user/io/ood_detection"',
                                                                  'IO_ROOT = "/mine"'))
    assert default_config(load_config_module(own)).io_root == "/mine"
    broken = tmp_path / "broken.py"
    broken.write_text("params = {\n")
    os.environ["META_OOD_CONFIG"], saved = str(broken), os.environ["META_OOD_CONFIG"]
    try:
        with pytest.raises(SystemExit) as exc:
            parse_run_config("evaluation", [])
    finally:
        os.environ["META_OOD_CONFIG"] = saved
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{broken}: cannot be read: SyntaxError" in err and err.count("\n") == 1


