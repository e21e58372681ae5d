"""Secrets read from a file or the environment: one reader for the options and the TOML tables.

A secret never comes from the command line or the TOML file itself (those
are seen by C{ps} and backed up); it is the first line of a file, or an
environment variable.  The errors name the file, never its content.
"""

from __future__ import annotations

from collections.abc import Mapping


class SecretFileError(ValueError):
    """The secret's file cannot be used; the message names the file and why."""


def read_secret(path: str | None, env_name: str, environ: Mapping[str, str]) -> str | None:
    """The first line of C{path} (stripped), or C{environ[env_name]}, or C{None}.

    @raise SecretFileError: the file cannot be read, is not UTF-8 or is empty.
    """
    if path is None:
        return environ.get(env_name) or None
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.readline().strip()
    except OSError as e:
        raise SecretFileError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} is not UTF-8 text") from None
    if not secret:
        raise SecretFileError(f"{path} is empty")
    return secret
