import sys

from drift_monitor.cli import main

sys.exit(main())
