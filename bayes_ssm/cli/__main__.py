"""``python -m bayes_ssm.cli``: the same as the ``bayes-ssm`` command."""

import sys

from bayes_ssm.cli import main

if __name__ == "__main__":  # importing this module (e.g. a documentation tool) runs nothing
    sys.exit(main())
