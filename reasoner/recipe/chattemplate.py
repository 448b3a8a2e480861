"""``prompt.chat_template``: the chat template a recipe trains and evaluates with, instead of the tokenizer's own.

Models are asked through their tokenizer's chat template. Some need another one: an R1-distill model wants its
``<think>`` template, a base model has none. The recipe gives the Jinja text itself or a file beside the recipe;
it is read once when the recipe loads, so the recipe a run writes and pushes holds the template it really used,
and a template that does not parse is refused in one line before anything loads.
"""

from __future__ import annotations

from pathlib import Path

from reasoner.errors import UserError

JINJA_MARKS = ("{%", "{{")


def read_chat_template(value: str | None, recipe_folder: Path) -> str | None:
    """The template text for ``value`` (Jinja text, or a path relative to the recipe's folder), checked to parse."""
    if value is None or value == "":
        return None
    if any(mark in value for mark in JINJA_MARKS):
        text, where = value, "prompt.chat_template"
    else:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else recipe_folder / path
        if not path.is_file():
            raise UserError(f"prompt.chat_template '{value}' is neither Jinja text nor a file (looked for {path}): "
                            "give the template itself or the path of its .jinja file")
        text, where = path.read_text(encoding="utf-8"), f"prompt.chat_template file {path}"
    check_parses(text, where)
    return text


def check_parses(text: str, where: str) -> None:
    import jinja2

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where} is not a valid Jinja template (line {exc.lineno}: {exc.message}): fix it") from None


def use_chat_template(tokenizer, template: str | None):
    """The tokenizer, asking with ``template`` when a recipe sets one (it is saved with the trained model)."""
    if template:
        tokenizer.chat_template = template
    return tokenizer
