"""Numbers as the tables and log lines show them."""


def percent(value, missing="-") -> str:
    """A fraction in % with two decimals, without the sign; `missing` where there is none (None)."""
    return missing if value is None else f"{100 * value:.2f}"
