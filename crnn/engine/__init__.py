"""The training engine: the loop (:mod:`train`), what it reports to (:mod:`callbacks`,
:mod:`progress`), optimizers and schedules (:mod:`optim`), device and precision (:mod:`device`),
torchrun ranks (:mod:`ranks`), the self-describing checkpoint (:mod:`checkpoint`) and what a
resumable one belongs to (:mod:`resume`). Core only: torch, numpy, pyarrow; never MLflow or
Prefect."""
