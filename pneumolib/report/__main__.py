"""``python -m pneumolib.report``: build the PDF report and the model card (see :func:`pneumolib.report.main`)."""

import sys

from .build import main

if __name__ == "__main__":
    sys.exit(main())
