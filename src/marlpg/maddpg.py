"""``python -m marlpg.maddpg``: train MADDPG and IDDPG from the command line (the algorithm: :mod:`marlpg.algos.maddpg`)."""
from marlpg.algos import maddpg
from marlpg.commands import run_command


def main(argv=None) -> int:
    return run_command(maddpg, "maddpg", argv)


if __name__ == "__main__":
    raise SystemExit(main())
