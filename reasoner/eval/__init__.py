"""Evaluation: a model's accuracy on a task, with the prompt, data and answer format a recipe trains on.

``scoring`` scores completions (pure), ``results`` writes and reads ``results.json``/``completions.jsonl``,
``tables`` prints comparisons, ``models`` resolves and loads the model, ``generation`` runs transformers or
vLLM, ``run`` is ``evaluate()``, and ``cli`` is ``reasoner eval``.
"""

from reasoner.eval.results import COMPLETIONS_FILE, RESULTS_FILE, EvalResult, is_saved_result
from reasoner.eval.run import evaluate
from reasoner.eval.scoring import aggregate, score_completion
from reasoner.eval.tables import compare, model_card_section

__all__ = ["COMPLETIONS_FILE", "RESULTS_FILE", "EvalResult", "aggregate", "compare", "evaluate", "is_saved_result",
           "model_card_section", "score_completion"]
