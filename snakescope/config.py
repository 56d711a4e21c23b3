"""Configuration checks that give one line naming the offending key."""

from __future__ import annotations

from typing import Any, Mapping

from .errors import InputError


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def check_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate ``config`` against the JSON ``schema``.

    Raises
    ------
    InputError
        One line: ``config key <dotted.path>: <problem>; see config/README.md``.
        Unknown keys name the key itself.
    """
    import jsonschema
    from jsonschema.exceptions import best_match

    cls = jsonschema.validators.validator_for(schema)
    error = best_match(cls(schema).iter_errors(config))
    if error is None:
        return
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        where = _key(path + extra[:1])
        hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
        raise InputError(f"config key {where}: unknown key; {hint} (see config/README.md)")
    if error.validator == "oneOf" and error.context:
        # report the alternative that got furthest, with the key path
        sub = best_match(error.context)
        message = sub.message if sub is not None else error.message
    else:
        message = error.message
    raise InputError(f"config key {_key(path)}: {message}; see config/README.md")
