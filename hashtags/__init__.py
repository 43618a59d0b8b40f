"""The hashtag domain: pure logic, no I/O.

Public API: ``from hashtags import extract_hashtags, normalize_tag``.

The text functions are loaded on first use (PEP 562), so importing a submodule such as
``hashtags.planning`` does not import ``hashtags.text`` and its ``regex`` dependency: the DAG imports
``hashtags.planning`` on Cloud Composer, where this project is not installed (terraform/composer.tf).
"""
from importlib import import_module

__all__ = ["extract_hashtags", "normalize_tag", "distinct_tags", "is_valid_key"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("hashtags.text"), name)
    raise AttributeError(f"module 'hashtags' has no attribute {name!r}")
