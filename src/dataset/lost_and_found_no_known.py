"""LostAndFound-testNoKnown, SegmentMeIfYouCan's LostAndFound set (obstacle track): the LostAndFound test
split as downloaded (the LostAndFound root: leftImg8bit/test/<city>/<fid>_leftImg8bit.png with
gtCoarse/test/<city>/<fid>_gtCoarse_labelIds.png), frames sorted by frame id, without the frames the
benchmark leaves out (docs/BENCHMARKS.md section 2): first the sorted indices EMPTY_LABEL_INDICES
(empty labels; 1203 -> 1186), then the frames of KNOWN_OBJECT_PREFIXES (children, bicycles: 1043).
Labels as the benchmark maps LostAndFound's ids: 0 void, 1 road -> 0, 2..200 -> 1 (the non-hazards
too, unlike the LostAndFound set of the paper's protocol), any other id void. A pre-generated
_labelTrainIds.png holds the paper's convention and is not used."""
import logging
import os

from src.dataset.base import IMAGE_SUFFIX, CityLayoutDataset, DatasetError, LabelValues, lookup_table
from src.dataset.lost_and_found import LostAndFound
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE

logger = logging.getLogger(__name__)

TEST_FRAMES = 1203  # the sorted indices below are positions among these
EMPTY_LABEL_INDICES = frozenset({17, 37, 55, 72, 91, 110, 129, 153, 174, 197, 218, 353, 490, 618, 686, 792, 793})
KNOWN_OBJECT_PREFIXES = ("15_Rechbergstr_Deckenpfronn", "01_Hanns_Klemm_Str_45_000006",
                         "01_Hanns_Klemm_Str_45_000007", "10_Schlossberg_9_000004")
ROAD_ID, FIRST_ANOMALY_ID, LAST_ANOMALY_ID = 1, 2, 200
LABEL_TO_TRAIN_ID = lookup_table([(ROAD_ID, 0)] + [(i, 1) for i in range(FIRST_ANOMALY_ID, LAST_ANOMALY_ID + 1)])
FOLDER_SPLIT = "test"


def kept_frames(frame_ids: list) -> list:
    """Positions in `frame_ids` of the frames the benchmark keeps, in frame id order."""
    order = sorted(range(len(frame_ids)), key=frame_ids.__getitem__)
    return [k for n, k in enumerate(order)
            if n not in EMPTY_LABEL_INDICES and not frame_ids[k].startswith(KNOWN_OBJECT_PREFIXES)]


class LostAndFoundNoKnown(CityLayoutDataset):
    # The root is LostAndFound's: the same download, declared once (the settings share it).
    spec = DatasetSpec("LostAndFound-testNoKnown", "eval", LostAndFound.spec.root, LostAndFound.spec.layout,
                       {"testNoKnown": Split("laf_noknown_eval", 1043, "obstacle", submission="LostAndFound-test")},
                       INFERENCE)
    train_id_in = 0
    train_id_out = 1
    label_folder = LostAndFound.label_folder
    name_pattern = LostAndFound.name_pattern
    lut = LABEL_TO_TRAIN_ID
    train_ids_files = False
    # the benchmark's mapping (LABEL_TO_TRAIN_ID) gives every value 0..255 a meaning
    label_values = LabelValues.of("LostAndFound label ids", range(256))

    def __init__(self, root: str, split: str = "testNoKnown", transform=None):
        if split not in self.spec.splits:
            raise DatasetError(f"unknown {self.spec.name} split {split!r}: expected testNoKnown")
        super().__init__(root, FOLDER_SPLIT, transform)
        if len(self.images) != TEST_FRAMES:
            logger.warning("%s: %d LostAndFound test frames in %s, not the official %d: the benchmark's excluded "
                           "sorted indices name other frames here", self.spec.name, len(self.images), root,
                           TEST_FRAMES)
        frame_ids = [os.path.basename(p)[:-len(IMAGE_SUFFIX)] for p in self.images]
        keep = kept_frames(frame_ids)
        self.images, self.targets, self.label_id_files = ([items[k] for k in keep] for items in
                                                          (self.images, self.targets, self.label_id_files))
        self.frame_ids = [frame_ids[k] for k in keep]
        self.split = split
