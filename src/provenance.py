"""What each cached output was computed from, so that a re-run reuses an output only when that is unchanged.

The identity of an output names its inputs: the network weights (the sha256 of the checkpoint file's
content), the data (each image and label file with its size and mtime) and the settings that change
the output; an output computed from other outputs names their identities instead.

Every folder of cached outputs has a record, `paths.identity_file(folder)` (identity.json): output
file name -> identity, or null while the output is being computed (so that a file an interrupted run
wrote is never taken for a file of unknown origin). A stage asks its Record which outputs to compute:
those missing, those being computed when a run stopped, and those whose recorded identity differs
from the current one, for which it logs one line saying what changed. An output without an entry
(written by another program, e.g. the reference implementation, or by a version before these
records) is used as it is, and one line says so. Training checkpoints carry their identity inside
(`provenance`), and the sections of a results file theirs (`configs`).
"""
import hashlib
import json
import logging
import operator
import os
import time

from src import paths
from src.atomic import read_json, write_json
from src.dataset import DatasetError, build_dataset
from src.model import read_checkpoint

logger = logging.getLogger(__name__)

RECORD = "the record of the inputs of the outputs in this folder (a JSON object)"
RERUN = "the same command"
# The settings a section of the results file depends on, beyond its inputs' identities (the
# results file's name holds those that all its sections share: run, entropy threshold, score).
SECTION_SETTINGS = {"pixel": ("score", "bins"), "segment": ("entropy_threshold", "cv"), "miou": ()}
_NAMES = {"weights": "the weights", "origin": "the starting weights", "data": "the data", "probs": "the probs",
          "segments": "the segment search outputs", "meta_classifier": "the meta classifier result"}
_HASH_CHUNK = 1 << 24
# A record of 1203 images is about 1 MB of JSON, 50 ms to write: done() waits at least a second, and
# 100 times as long as the last write took, before it writes again (1 % of the time per record).
_FLUSH_SECONDS, _FLUSH_FACTOR = 1.0, 100


# ---------------------------------------------------------------- identities of inputs

def _sha256_of_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def weights_identity(cfg, path):
    """{'sha256': ...} of the checkpoint file at `path`, None if there is none.

    Hashing a 500 MB checkpoint takes a second or so: the digest is remembered, by absolute path,
    size and mtime, in paths.weights_hash_cache. Under torchrun only the first process writes it
    (the others would replace each other's temporary files).
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    cache_path, key = paths.weights_hash_cache(cfg), os.path.abspath(path)
    cache = read_json(cache_path, "a cache of checkpoint digests", RERUN) if os.path.exists(cache_path) else {}
    known = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    entry = cache.get(key, {})
    if {k: entry.get(k) for k in known} != known:
        entry = {**known, "sha256": _sha256_of_file(path)}
        if os.environ.get("RANK", "0") == "0":
            write_json(cache_path, {**cache, key: entry})
    return {"sha256": entry["sha256"]}


def file_identity(path) -> dict:
    stat = os.stat(path)
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def item_files(dataset, i) -> dict:
    """The files item i of `dataset` is read from, by role: image, label and, where the data set has
    them, the label ids file (Cityscapes layout) and the overlay (Fishyscapes Static as distributed).
    A split whose labels are withheld (a SegmentMeIfYouCan test split) has no label file."""
    files = {"image": dataset.images[i]}
    if dataset.targets[i]:
        files["label"] = dataset.targets[i]
    for role, attribute in (("label_ids", "label_id_files"), ("overlay", "overlays")):
        listed = getattr(dataset, attribute, None)
        path = listed[i] if listed else None
        if path and path not in files.values():
            files[role] = path
    return files


def item_identity(dataset, i) -> dict:
    return {role: file_identity(path) for role, path in item_files(dataset, i).items()}


def summary(identities: dict) -> dict:
    """{'images': how many, 'sha256': digest} of the identities of the images of a set, by name."""
    return {"images": len(identities), "sha256": _digest(identities)}


def data_summary(dataset) -> dict:
    return summary({str(i): item_identity(dataset, i) for i in range(len(dataset))})


def training_data(dataset) -> dict:
    """A cheap identity of a training set: its ordered file names with their sizes (its parts', for a
    set made of others, e.g. Cityscapes+COCO). Names, not paths: moving the data changes nothing."""
    parts = getattr(dataset, "parts", (dataset,))
    files = [[os.path.basename(p), os.path.getsize(p)]
             for part in parts for i in range(len(part)) for p in item_files(part, i).values()]
    return {"images": sum(len(part) for part in parts), "sha256": _digest(files)}


def training_origin(cfg):
    """What epoch 0 of the training run was: the init checkpoint's identity or 'random'; resuming
    from -epoch E > 0, what checkpoint E records (None if it records nothing)."""
    if cfg.training_starting_epoch > 0:
        path = paths.checkpoint_path(cfg, cfg.training_starting_epoch)
        return read_checkpoint(path, mmap=True).get("provenance", {}).get("origin") if os.path.exists(path) else None
    return "random" if cfg.no_init_ckpt else weights_identity(cfg, paths.init_ckpt_path(cfg))


def training_identity(cfg, dataset) -> dict:
    """What a training checkpoint records besides its settings: where the run started, on what data."""
    return {"origin": training_origin(cfg), "data": training_data(dataset)}


# ---------------------------------------------------------------- what changed

def _short(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return value["path"] if "path" in value else ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    text = str(value)
    return text[:8] + ".." if len(text) > 20 else text


def _change(key, old, new) -> str:
    """`the weights changed (...)` for the inputs of _NAMES, else e.g. `bins 10000 -> 50`."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        inner = f"{_short(old)} -> {_short(new)}"
    elif "path" in old and "path" in new:  # a file
        inner = f"{new['path']} changed" if old["path"] == new["path"] else f"{old['path']} -> {new['path']}"
    else:
        inner = changes(old, new)
    return f"{_NAMES[key]} changed ({inner})" if key in _NAMES else f"{key} {inner}"


def changes(old, new) -> str:
    """What differs from the identity `old` to `new`, e.g. `the weights changed (sha256 ab12cd34.. ->
    5f6e7d8c..)`; '' if nothing."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return "" if old == new else f"{_short(old)} -> {_short(new)}"
    keys = dict.fromkeys([*new, *old])
    return ", ".join(_change(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


# ---------------------------------------------------------------- records

class Record:
    """The record of the outputs in one folder: which inputs each was computed from."""

    def __init__(self, folder, what, unit="images"):
        self.path = paths.identity_file(folder)
        self.what, self.unit = what, unit
        self.entries = read_json(self.path, RECORD, RERUN) if os.path.exists(self.path) else {}
        self.wanted = {}
        self._unwritten, self._next_write = False, time.monotonic() + _FLUSH_SECONDS

    def _write(self):
        start = time.monotonic()
        write_json(self.path, dict(sorted(self.entries.items())))  # sorted: parallel workers finish in any order
        now = time.monotonic()
        self._unwritten, self._next_write = False, now + max(_FLUSH_SECONDS, _FLUSH_FACTOR * (now - start))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.flush()

    def identity_of(self, path):
        """The recorded identity of the output at `path`; of one without an entry, its file's (if any)."""
        entry = self.entries.get(os.path.basename(path))
        if entry is not None:
            return entry
        return {"unrecorded": file_identity(path) if os.path.exists(path) else None}

    def pending(self, wanted: dict, exists=os.path.exists, satisfied=operator.eq, drop=False, log=True) -> list:
        """The outputs among `wanted` (path -> current identity) to compute, in its order; logs what
        changed. Their entries are cleared first, so that an interrupted run leaves none that lies.
        `satisfied(recorded, current)` says whether a recorded output will do; `drop`: delete the
        recorded outputs of this folder that are not wanted any more (images no longer in the set);
        `log`: False when the caller says why itself."""
        self.wanted = {os.path.basename(path): identity for path, identity in wanted.items()}
        todo, stale, unknown = [], {}, []
        for path, identity in wanted.items():
            key = os.path.basename(path)
            if not exists(path) or self.entries.get(key, {}) is None:
                todo.append(path)
            elif key not in self.entries:
                unknown.append(key)
            elif not satisfied(self.entries[key], identity):
                stale[key] = changes(self.entries[key], identity)
                todo.append(path)
        gone = [key for key in self.entries if key not in self.wanted] if drop else []
        if log:
            self._log(stale, unknown, gone)
        for key in gone:
            output = os.path.join(os.path.dirname(self.path), key)
            if os.path.exists(output):
                os.remove(output)
            del self.entries[key]
        for path in todo:
            self.entries[os.path.basename(path)] = None
        if todo or gone:
            self._write()
        return todo

    def _log(self, stale, unknown, gone):
        """One line per kind of news: outputs of other inputs, outputs of unknown inputs, outputs dropped."""
        total = len(self.wanted)
        if stale:
            reasons = set(stale.values())
            if len(stale) == total and len(reasons) == 1:
                again = "it" if total == 1 else f"all {total} {self.unit}"
                logger.info("%s: %s: computing %s again", self.what, reasons.pop(), again)
            else:
                key, reason = next(iter(stale.items()))
                logger.info("%s: %d of %d %s changed (%s: %s): computing them again", self.what, len(stale), total,
                            self.unit, key, reason)
        if unknown:
            which = unknown[0] if total == 1 else f"{len(unknown)} of {total} {self.unit}"
            logger.info("%s: %s in %s without a record of their inputs (written by another program or an "
                        "older version): used as they are", self.what, which, os.path.dirname(self.path))
        if gone:
            logger.info("%s: deleted the outputs of %d %s no longer in the set", self.what, len(gone), self.unit)

    def marked(self, wanted, exists=os.path.exists) -> list:
        """The outputs among `wanted` that pending() chose to compute: under torchrun the other processes
        read the first one's choice, after it called pending()."""
        return [path for path in wanted if not exists(path) or self.entries.get(os.path.basename(path), {}) is None]

    def done(self, *outputs):
        """Records the outputs at `outputs` (paths), just written, with their identities; the record
        file is written at most once a second, less often when it is large (`with record:` or
        flush() writes the rest), so a killed run computes its last seconds' outputs again."""
        for path in outputs:
            key = os.path.basename(path)
            self.entries[key] = self.wanted[key]
        self._unwritten = True
        if time.monotonic() >= self._next_write:
            self._write()

    def flush(self):
        """Writes what done() recorded and has not written yet."""
        if self._unwritten:
            self._write()


class Output:
    """One cached output file: `reusable` when it exists and is of the current inputs; `done()`
    records it once written."""

    def __init__(self, path, identity, what):
        self.path = path
        self.record = Record(os.path.dirname(path), what)
        self.reusable = not self.record.pending({path: identity})

    def done(self):
        self.record.done(self.path)
        self.record.flush()


# ---------------------------------------------------------------- the outputs of each stage

def logits_kept(recorded, current) -> bool:
    """A probs file will do if it is of the same weights and data and holds logits when they are wanted
    (a file with logits serves a run without them)."""
    return ({**recorded, "logits": current["logits"]} == current) and (recorded.get("logits") or not current["logits"])


def image_identity(weights, dataset, i) -> dict:
    """The identity of image i of `dataset` through the network of `weights` (weights_identity)."""
    return {"weights": weights, "data": item_identity(dataset, i)}


def prepared_identities(cfg, epoch, indices) -> dict:
    """Index -> identity of each image as the prepare stage wrote it, which the outputs computed from it
    name: that of its compact labels file where there is one, else of its probs file (its weights and
    data, not whether it holds logits)."""
    labels = Record(paths.labels_dir(cfg, epoch), "labels")
    probs = Record(paths.probs_dir(cfg, epoch), "probs")
    identities = {str(i): labels.identity_of(paths.labels_file(cfg, epoch, i))
                  if os.path.exists(paths.labels_file(cfg, epoch, i)) else probs.identity_of(paths.probs_file(cfg, epoch, i))
                  for i in indices}
    return {i: {k: v for k, v in identity.items() if k != "logits"} for i, identity in identities.items()}


def pending_segments(cfg, epoch, indices, exists) -> tuple:
    """(record, image indices) of the segment search to run: outputs missing (`exists(index)` False)
    or of other probs or entropy threshold. The record is kept with the predicted segments' metrics."""
    files = {paths.metrics_file(cfg, epoch, i): i for i in indices}
    record = Record(os.path.dirname(paths.metrics_file(cfg, epoch, 0)),
                    f"segment search of {paths.metaseg_subdir(cfg, epoch)}")
    probs = prepared_identities(cfg, epoch, indices)
    wanted = {path: {"probs": probs[str(i)], "threshold": cfg.entropy_threshold} for path, i in files.items()}
    return record, [files[path] for path in record.pending(wanted, exists=lambda path: exists(files[path]))]


def _cv_settings(cfg) -> dict:
    """The settings of the meta classifier's cross-validation that change its result."""
    return {"cv": cfg.cv, **({"folds": cfg.folds, "seed": cfg.seed} if cfg.cv == "kfold" else {})}


def meta_classifier_output(cfg, epoch, indices) -> Output:
    record = Record(os.path.dirname(paths.metrics_file(cfg, epoch, 0)), "segments")
    segments = {str(i): record.identity_of(paths.metrics_file(cfg, epoch, i)) for i in indices}
    return Output(paths.meta_classifier_file(cfg, epoch), {"segments": summary(segments), **_cv_settings(cfg)},
                  f"meta classifier {paths.meta_classifier_name(cfg, epoch)}")


def histograms_output(cfg, epoch, indices) -> Output:
    identity = {"probs": summary(prepared_identities(cfg, epoch, indices)), "score": cfg.score, "bins": cfg.bins}
    return Output(paths.histograms_file(cfg, epoch), identity, f"histograms of {paths.epoch_pattern(cfg, epoch)}")


def miou_output(cfg, epoch, dataset) -> Output:
    identity = {"weights": weights_identity(cfg, paths.evaluated_checkpoint(cfg, epoch)), "data": data_summary(dataset)}
    return Output(paths.miou_file(cfg, epoch), identity, f"mIoU of {paths.epoch_pattern(cfg, epoch)}")


def pending_panels(cfg, epoch, indices) -> tuple:
    """(record, image indices) of the panels to draw: missing, or of another meta classifier result."""
    meta = paths.meta_classifier_file(cfg, epoch)
    identity = {"meta_classifier": Record(os.path.dirname(meta), "meta classifier").identity_of(meta)}
    files = {paths.panel_file(cfg, epoch, i): i for i in indices}
    record = Record(os.path.dirname(paths.panel_file(cfg, epoch, 0)),
                    f"panels of {paths.meta_classifier_name(cfg, epoch)}", unit="panels")
    return record, [files[path] for path in record.pending(dict.fromkeys(files, identity))]


# ---------------------------------------------------------------- sections of the results file

def section_settings(cfg, section) -> dict:
    settings = {name: getattr(cfg, name) for name in SECTION_SETTINGS[section]}
    return {**settings, **_cv_settings(cfg)} if section == "segment" else settings


def section_inputs(cfg, section, runs) -> dict:
    """The weights of the networks of `runs` (run -> epoch) and the data a section is computed from:
    the evaluation set, or for the mIoU the Cityscapes val split."""
    dataset = build_dataset("Cityscapes", cfg, split="val") if section == "miou" else build_dataset(cfg.VALSET, cfg)
    weights = {run: weights_identity(cfg, paths.evaluated_checkpoint(cfg, epoch)) for run, epoch in runs.items()}
    return {"weights": weights, "data": data_summary(dataset)}


def section_config(cfg, section, runs) -> dict:
    """What results['configs'][section] keeps: the section's settings and the identity of its inputs."""
    return {"settings": section_settings(cfg, section), "inputs": section_inputs(cfg, section, runs)}


def drop_changed_sections(cfg, results, path, computed, runs) -> None:
    """Removes from `results` (a results file's content) the sections that this run does not compute
    and whose inputs changed since they were computed, each with one line; a section without a
    record (written by an older version) is kept, with one line."""
    configs = results.setdefault("configs", {})
    for section in [s for s in SECTION_SETTINGS if s in results and s not in computed]:
        if section not in configs:
            logger.info("%s: the %s section has no record of its inputs (written by an older version): kept as "
                        "it is", path, section)
            continue
        try:
            changed = changes(configs[section]["inputs"], section_inputs(cfg, section, runs))
        except DatasetError as err:
            changed = f"its data cannot be read ({err})"
        if changed:
            logger.info("%s: %s: the %s section is dropped (evaluation.py -%s computes it again)", path, changed,
                        section, section)
            del results[section], configs[section]
