"""Planning a run before it queues: the memory it needs per device and the checkpoints it will save.

One module per job: ``shapes`` (model architectures), ``formulas`` (the memory arithmetic), ``settings`` (ZeRO
stage, precision and checkpointing as the training code uses them), ``estimate`` (a recipe on a layout from
reasoner.topology), ``search`` (the smallest layout that fits), ``report`` (the table), ``checkpoints`` (save
cadence, save time and the preemption signal's lead), ``hardware`` (this machine's GPUs and memory), and ``cli``
(``reasoner plan``).
"""
