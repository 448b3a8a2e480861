"""Rewards for GRPO: the built-in ones by name, and any other by import path, file path or TRL name.

``builtin`` holds the registered rewards (correctness by the task's comparison, and the format rewards),
``loading`` resolves a recipe's reward specs into checked, guarded functions, and ``trial`` calls them on a
small batch before the model loads. Number and answer parsing live in ``reasoner.tasks`` and are re-exported
here, since the rewards are where most readers look for them.
"""

from reasoner.rewards.builtin import (
    REWARD_RANGES,
    REWARDS,
    RewardFunc,
    correctness,
    integer,
    soft_format,
    strict_format,
    xml_count,
    xml_count_score,
)
from reasoner.rewards.loading import get_reward_funcs, resolve_reward, trl_reward_names
from reasoner.tasks.completions import completion_text, extract_answer
from reasoner.tasks.numeric import last_number, numbers_equal, parse_number

__all__ = [
    "REWARDS",
    "REWARD_RANGES",
    "RewardFunc",
    "completion_text",
    "correctness",
    "extract_answer",
    "get_reward_funcs",
    "integer",
    "last_number",
    "numbers_equal",
    "parse_number",
    "resolve_reward",
    "soft_format",
    "strict_format",
    "trl_reward_names",
    "xml_count",
    "xml_count_score",
]
