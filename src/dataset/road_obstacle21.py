"""RoadObstacle21, the SegmentMeIfYouCan obstacle track, as dataset_ObstacleTrack.zip unpacks below the root:
dataset_ObstacleTrack/images/<fid>.webp with dataset_ObstacleTrack/labels_masks/<fid>_labels_semantic.png,
fid = <scene>_<rest> (docs/BENCHMARKS.md section 2). Labels 0 road, 1 obstacle, 255 void (off the road).
validation = scene `validation` without the fids starting validation_19 or validation_21 .. validation_29
(30 frames, labels public); test = the scenes of TEST_SCENES (327, labels withheld). The extra scenes
(snowstorm, night) are in neither split."""
from src.dataset.smiyc_archive import TrackArchive
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE

VALIDATION_SCENE = "validation"
# The benchmark leaves these validation frames out (str.startswith takes the tuple).
EXCLUDED_VALIDATION = ("validation_19", *(f"validation_{n}" for n in range(21, 30)))
TEST_SCENES = frozenset({"curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving",
                         "darkasphalt", "darkasphalt2"})
SUBMISSION = "ObstacleTrack-all"


def scene(fid: str) -> str:
    return fid.split("_", 1)[0]


class RoadObstacle21(TrackArchive):
    spec = DatasetSpec("RoadObstacle21", "eval", "ROADOBSTACLE21_ROOT",
                       "dataset_ObstacleTrack/images/<scene>_<rest>.webp, "
                       "dataset_ObstacleTrack/labels_masks/<scene>_<rest>_labels_semantic.png",
                       {"validation": Split("ro21_val", 30, "obstacle", submission=SUBMISSION),
                        "test": Split("ro21_test", 327, "obstacle", labelled=False, submission=SUBMISSION)},
                       INFERENCE, split_setting="ROADOBSTACLE21_SPLIT")
    archive = "dataset_ObstacleTrack"
    image_suffix = ".webp"

    @staticmethod
    def in_split(fid: str, split: str) -> bool:
        if split == "validation":
            return scene(fid) == VALIDATION_SCENE and not fid.startswith(EXCLUDED_VALIDATION)
        return scene(fid) in TEST_SCENES
