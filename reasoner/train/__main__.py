"""``python -m reasoner.train``: what ``accelerate launch`` and SLURM run on every rank."""

from reasoner.train.run import main

if __name__ == "__main__":
    raise SystemExit(main())
