"""The one exception family of the library, and how the scripts turn it into an exit status.

Library code raises a subclass of `MetaOodError` for every mistake in a user's setup
(missing files, bad layouts, mismatching checkpoints); the scripts' `main` reports it in one
line and exits with 1. Anything else is a bug and keeps its traceback.
"""
import logging
import sys

logger = logging.getLogger("meta_ood")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


class MetaOodError(Exception):
    """A problem with the user's data, files or settings, described in the message."""


class OutputError(MetaOodError):
    """An output file that cannot be written: a read-only or full disk, a file where a folder belongs."""


def run_main(main, argv=None) -> int:
    """Runs a script's `main(argv)` with logging set up; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr)
    try:
        main(argv)
    except MetaOodError as err:
        logger.error("%s", err)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; finished outputs are kept, run the same command again to continue")
        return 130
    return 0
