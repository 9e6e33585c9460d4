"""Shared types, below every other package: task kinds and target specs (:mod:`kinds`), the
records a source yields and a scoring job pins (:mod:`records`), the tensors training and
evaluation pass around (:mod:`batches`). They import nothing of the project but leaves."""
