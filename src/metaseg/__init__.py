"""MetaSeg segment metrics (docs/METHOD.md §4), compiled from metrics.pyx."""
try:
    from .metrics import compute_metrics_components, compute_metrics_mask
except ImportError as err:
    raise ImportError(
        "src.metaseg: the Cython extension src/metaseg/metrics.pyx is not compiled (or was built for "
        "another Python): build it with `cd src/metaseg && python metrics_setup.py build_ext --inplace` "
        f"or run `bash preparation/setup.sh` ({err})") from err

__all__ = ["compute_metrics_components", "compute_metrics_mask"]
