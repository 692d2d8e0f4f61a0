"""Output names of src/paths.py that a run's settings must keep apart."""
import dataclasses

from src import paths
from src.settings import default_config, parse_run_config


def test_fishyscapes_splits_write_to_their_own_folders():
    static = dataclasses.replace(default_config(), io_root="/io", VALSET="Fishyscapes", fishyscapes_split="Static")
    laf = dataclasses.replace(static, fishyscapes_split="LostAndFound")
    model = static.MODEL
    assert paths.probs_dir(static, 0) == f"/io/meta_ood_{model}/fs_eval/probs/baseline"
    assert paths.probs_dir(laf, 0) == f"/io/meta_ood_{model}/fs_laf_eval/probs/baseline"
    assert paths.metaseg_dir(laf) == f"/io/meta_ood_{model}/fs_laf_eval/metaseg_io"
    assert paths.results_dir(laf) == f"/io/meta_ood_{model}/fs_laf_eval/results"
    assert paths.plots_dir(static) == f"/io/plots/{model}_fs_eval"
    assert paths.plots_dir(laf) == f"/io/plots/{model}_fs_laf_eval"
    # the split only matters for Fishyscapes
    lost_and_found = dataclasses.replace(laf, VALSET="LostAndFound")
    assert paths.plots_dir(lost_and_found) == f"/io/plots/{model}_laf_eval"


def test_meta_classifier_file_names_what_the_result_depends_on():
    cfg = dataclasses.replace(default_config(), io_root="/io", VALSET="LostAndFound", entropy_threshold=0.7,
                              pareto_alpha=0.9, cv="loo")
    assert paths.meta_classifier_file(cfg, 1).endswith("laf_eval/metaseg_io/meta_classifier/"
                                                       "epoch_1_alpha_0.9_t0.7_loo.json")
    kfold = dataclasses.replace(cfg, cv="kfold", folds=3, seed=4)
    assert paths.meta_classifier_file(kfold, 0).endswith("meta_classifier/baseline_t0.7_kfold3_seed4.json")


def test_submission_files_are_named_as_the_benchmark_reads_them():
    cfg = parse_run_config("evaluation", ["--io_root", "/io", "-val", "RoadAnomaly21", "-epoch", "4"])
    plain, meta = paths.submission_methods(cfg, 4)
    assert (plain, meta) == ("MetaOoD_DeepLabV3+_WideResNet38_epoch_4_alpha_0.9_entropy",
                             "MetaOoD_DeepLabV3+_WideResNet38_epoch_4_alpha_0.9_entropy_meta_t0.7_loo")
    assert paths.submission_file(cfg, plain, "AnomalyTrack-all", "validation0003") == \
        f"/io/smiyc_submission/anomaly_p/{plain}/AnomalyTrack-all/validation0003.hdf5"
    other = parse_run_config("evaluation", ["--submission_name", "mine", "-threshold", "0.5", "--cv", "kfold"])
    assert paths.submission_methods(other, 1) == ("mine", "mine_meta_t0.5_kfold5_seed0")
