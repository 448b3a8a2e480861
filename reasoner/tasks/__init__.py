"""Tasks: what a question's gold answer is, how a model's answer is found, and how the two are compared.

``formats`` reads gold answers (``gsm8k``, ``number``, ``math``, ``exact``, ``choice``, ``regex``),
``compare`` compares answers (numbers, math-verify, normalized strings, choice letters), ``completions`` and
``numeric`` read completions, and ``spec`` turns a recipe's ``dataset``/``answer`` sections into the list of
data sets that training and evaluation share. Nothing here imports torch, datasets or transformers.
"""
