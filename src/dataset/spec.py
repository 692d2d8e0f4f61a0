"""What the rest of the project needs to know about a data set, declared once beside its class.

Each data set class has a `spec`; the registry (src/dataset/__init__.py) lists the classes.
From the spec come the data set's root setting (config.py variable `root`, flag
--<root in lower case>), the setting that picks its split (if any), its output folder below
meta_ood_<MODEL> (evaluation sets) and the frame count of its official download, checked
when it is loaded (another count is a warning, as the benchmarks' code does). A split of a
SegmentMeIfYouCan data set also names its track (docs/BENCHMARKS.md section 2), whether its
labels are public, and the data set name of the benchmark's submission files.
"""
import logging
from dataclasses import dataclass, field
from typing import Optional

from src.smiyc import TRACKS

logger = logging.getLogger(__name__)

ROLES = ("train", "eval", "source")  # -train choice, -val choice, part of another set


@dataclass(frozen=True)
class Split:
    output: Optional[str] = None   # evaluation output folder below meta_ood_<MODEL>
    frames: Optional[int] = None   # frames of the official download
    track: Optional[str] = None    # SegmentMeIfYouCan track, a key of src/smiyc.py TRACKS; None: not a SMIYC set
    labelled: bool = True          # False: labels withheld (a benchmark's test split), read as all void
    submission: Optional[str] = None  # SMIYC submission data set name (anomaly_p/<method>/<name>/)

    def __post_init__(self):
        if self.track not in (None, *TRACKS):
            raise ValueError(f"Split track: expected one of {', '.join(TRACKS)} or None, got {self.track!r}")


@dataclass(frozen=True)
class DatasetSpec:
    name: str                      # as config.py and the flags name it
    role: str                      # one of ROLES
    root: Optional[str]            # config.py variable of its root (None: built from other sets)
    layout: str                    # the expected files below the root, for help texts and errors
    splits: dict = field(default_factory=dict)   # split name -> Split; the first is the default
    scripts: tuple = ()            # the scripts that accept its root flag
    split_setting: Optional[str] = None  # config.py variable that picks the split (None: the default)

    @property
    def root_setting(self) -> Optional[str]:
        """The RunConfig field (and flag without dashes) of the root."""
        return self.root.lower() if self.root else None

    @property
    def default_split(self) -> Optional[str]:
        return next(iter(self.splits), None)

    def split_of(self, cfg) -> str:
        """The split a run uses: the split setting's value, else the default."""
        return getattr(cfg, self.split_setting.lower()) if self.split_setting else self.default_split

    def split_info(self, cfg) -> Split:
        """The Split of the run's split."""
        return self.splits[self.split_of(cfg)]

    def output(self, cfg) -> str:
        """The evaluation output folder of the run's split."""
        return self.split_info(cfg).output

    def labelled_split(self) -> Optional[str]:
        """The first split with public labels (where a meta classifier for a test split learns)."""
        return next((name for name, split in self.splits.items() if split.labelled), None)

    def check_frames(self, split: str, frames: int, root) -> None:
        expected = self.splits.get(split, Split()).frames
        if expected is not None and frames != expected:
            logger.warning("%s %s: %d frames in %s, but the official set has %d", self.name, split, frames,
                           root, expected)
