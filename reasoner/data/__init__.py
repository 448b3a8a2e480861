"""Data: load rows (a hub data set, local files, or generated problems), build chat prompts, read gold answers
in the task's format, and mix several data sets by weight.

``sources`` loads rows, ``prompts`` builds the chat messages, ``prepare`` turns rows into GRPO training rows
and counts what it drops, ``mixture`` mixes data sets, ``task`` does all of it for a recipe's task, and
``generated`` makes GSM8K-shaped problems when no data set is given.
"""

from reasoner.data.generated import generate_problems
from reasoner.data.mixture import mix_datasets, mix_indices
from reasoner.data.prepare import PrepStats, prepare_dataset, usable_rows
from reasoner.data.prompts import DEFAULT_SYSTEM, SYSTEM_PROMPT, build_prompt, resolve_system_prompt
from reasoner.data.sources import GENERATED, load_rows
from reasoner.data.task import prepare_task, task_questions
from reasoner.tasks.formats import extract_gold

__all__ = [
    "DEFAULT_SYSTEM",
    "GENERATED",
    "PrepStats",
    "SYSTEM_PROMPT",
    "build_prompt",
    "extract_gold",
    "generate_problems",
    "load_rows",
    "mix_datasets",
    "mix_indices",
    "prepare_dataset",
    "prepare_task",
    "resolve_system_prompt",
    "task_questions",
    "usable_rows",
]
