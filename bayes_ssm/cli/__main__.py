"""``python -m bayes_ssm.cli``: the same as the ``bayes-ssm`` command."""

import sys

from bayes_ssm.cli import main

sys.exit(main())
