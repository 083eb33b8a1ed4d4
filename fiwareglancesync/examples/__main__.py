"""``python -m fiwareglancesync.examples``: print the folder of the bundled example."""

import sys

from fiwareglancesync.examples import main

sys.exit(main())
