"""Few-shot classification (docs/tasks/classification.md): the LM-BFF splits and the dataset
registry (``data``), verbalizer scoring by a frozen task LM (``scoring``), the gap reward
(``rewards``) and the task itself (``task``)."""

from .task import ClassificationConfig, Evaluation, FewShotClassification

__all__ = ["ClassificationConfig", "Evaluation", "FewShotClassification"]
