"""``python -m marlpg.mappo``: train MAPPO and IPPO from the command line (the algorithm: :mod:`marlpg.algos.mappo`)."""
from marlpg.algos import mappo
from marlpg.commands import run_command


def main(argv=None) -> int:
    return run_command(mappo, "mappo", argv)


if __name__ == "__main__":
    raise SystemExit(main())
