"""Training plumbing shared by both trainers (``train-ae`` and ``structure-tune``), one module per concern.

``launch`` (device and process count; re-running a command under torchrun), ``distributed`` (rank, device
and process group inside each process; all-reduce), ``checkpoint`` (atomic save, ``weights_only`` load,
random states), ``metrics`` (JSONL log and plot), ``schedule`` (learning rate as a function of the step),
``order`` (the data order of an epoch, each rank's share), ``progress`` (the reports both trainers send).
The package imports nothing itself, so that the command line can show training options without torch.
"""
