"""``python -m marlpg.coma``: train COMA and its baselines from the command line (the algorithm: :mod:`marlpg.algos.coma`)."""
from marlpg.algos import coma
from marlpg.commands import run_command


def main(argv=None) -> int:
    return run_command(coma, "coma", argv)


if __name__ == "__main__":
    raise SystemExit(main())
