"""RoadAnomaly21, the SegmentMeIfYouCan anomaly track, as dataset_AnomalyTrack.zip unpacks below the root:
dataset_AnomalyTrack/images/<fid>.jpg with dataset_AnomalyTrack/labels_masks/<fid>_labels_semantic.png
(docs/BENCHMARKS.md section 2). validation = the fids validation0000..validation0009 (labels public),
test = the other 100 (labels withheld). Frames of various sizes, none 1024x2048."""
from src.dataset.smiyc_archive import TrackArchive
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE

VALIDATION_PREFIX = "validation"
SUBMISSION = "AnomalyTrack-all"


class RoadAnomaly21(TrackArchive):
    spec = DatasetSpec("RoadAnomaly21", "eval", "ROADANOMALY21_ROOT",
                       "dataset_AnomalyTrack/images/<fid>.jpg, dataset_AnomalyTrack/labels_masks/<fid>_labels_semantic.png",
                       {"validation": Split("ra21_val", 10, "anomaly", submission=SUBMISSION),
                        "test": Split("ra21_test", 100, "anomaly", labelled=False, submission=SUBMISSION)},
                       INFERENCE, split_setting="ROADANOMALY21_SPLIT")
    archive = "dataset_AnomalyTrack"
    image_suffix = ".jpg"

    @staticmethod
    def in_split(fid: str, split: str) -> bool:
        return fid.startswith(VALIDATION_PREFIX) == (split == "validation")
