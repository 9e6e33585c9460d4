"""Every task kind's behaviour, by target kind: the one list to extend with a new kind."""

from __future__ import annotations

from crnn.tasks.base import Task
from crnn.tasks.classification import ClassificationTask
from crnn.tasks.regression import RegressionTask
from crnn.tasks.sequence import SequenceTask

TASKS: dict[str, type[Task]] = {
    cls.kind.target: cls for cls in (SequenceTask, ClassificationTask, RegressionTask)
}
