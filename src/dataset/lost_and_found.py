"""LostAndFound (evaluation): leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png with
gtCoarse/<split>/<city>/<base>_gtCoarse_labelIds.png (or a pre-generated _labelTrainIds.png)."""
from src.dataset.base import VOID_ID, CityLayoutDataset, LabelValues, lookup_table
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE

UNLABELED_ID, FREE_ID = 0, 1
# 43 "Kid (crawling)" is an object too, as in the reference's table.
OBJECT_IDS = (*range(2, 31), 32, 35, 40, 41, 42, 43)
NON_HAZARD_IDS = (31, 33, 34, 36, 37, 38, 39)
TRAIN_ID_IN, TRAIN_ID_OUT, TRAIN_ID_NEITHER = 1, 2, 0
# 0 (unlabeled: off the road) is void; an id not in the table stops the run (LABEL_IDS). Non-hazards get 0: neither
# in-distribution (1) nor OoD (2), so pixel metrics skip them and segments do not count them as OoD.
LABEL_TO_TRAIN_ID = lookup_table([(FREE_ID, TRAIN_ID_IN)] + [(i, TRAIN_ID_OUT) for i in OBJECT_IDS]
                                 + [(i, TRAIN_ID_NEITHER) for i in NON_HAZARD_IDS])
LABEL_IDS = LabelValues.of("LostAndFound label ids", (UNLABELED_ID, FREE_ID, *OBJECT_IDS, *NON_HAZARD_IDS))
TRAIN_IDS = LabelValues.of("LostAndFound train ids", (TRAIN_ID_NEITHER, TRAIN_ID_IN, TRAIN_ID_OUT, VOID_ID))


class LostAndFound(CityLayoutDataset):
    spec = DatasetSpec("LostAndFound", "eval", "LOSTANDFOUND_ROOT",
                       "leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png, "
                       "gtCoarse/<split>/<city>/<city>_<seq>_<frame>_gtCoarse_labelIds.png",
                       {"test": Split("laf_eval", 1203)}, INFERENCE)
    train_id_in = TRAIN_ID_IN
    train_id_out = TRAIN_ID_OUT
    label_folder = "gtCoarse"
    name_pattern = "<city>_<seq>_<frame>"
    lut = LABEL_TO_TRAIN_ID
    label_values = LABEL_IDS
    train_id_values = TRAIN_IDS

    def __init__(self, root: str, split: str = "test", transform=None):
        super().__init__(root, split, transform)
