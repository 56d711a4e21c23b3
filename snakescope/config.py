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


def load_yaml_strict(path: str) -> Any:
    """Load a YAML file, rejecting duplicate keys (PyYAML silently keeps the last).

    Raises
    ------
    InputError
        ``<file>: key '<k>' appears twice (line N); ...``.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise InputError(
                    f"{path}: key '{key}' appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "rename or merge one (two datasets cannot share a name)"
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    with open(path, encoding="utf-8") as fh:
        try:
            return yaml.load(fh, Loader=StrictLoader)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
