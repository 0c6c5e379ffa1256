"""``python -m anomalyd.simulator`` = ``anomalyd simulate``."""

import sys

from .cli import main

sys.exit(main())
