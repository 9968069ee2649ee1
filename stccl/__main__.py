import sys

from stccl.cli import main

sys.exit(main())
