"""``python -m stream`` is ``interest-stream``."""

import sys

from stream.cli import main

sys.exit(main())
