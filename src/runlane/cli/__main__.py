import sys

from runlane.cli.main import main

sys.exit(main())
