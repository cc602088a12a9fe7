"""``SecretValue`` never shows its value, except through ``reveal()``."""

from __future__ import annotations

import logging
import pickle
import traceback

import pytest
from vault_support import SECRET

from botmox_agent.vault import SecretValue


def test_every_representation_is_redacted() -> None:
    value = SecretValue(SECRET)
    old_style = "%s %r" % (value, value)  # noqa: UP031 - the old formatting too
    shown = [repr(value), str(value), f"{value}", f"{value!r}", f"{value:>40}", old_style]
    assert all(SECRET not in text for text in shown)
    assert repr(value) == "SecretValue('**********')"
    assert value.reveal() == SECRET
    assert len(value) == len(SECRET)


def test_a_value_in_a_log_call_or_an_exception_stays_redacted(caplog: pytest.LogCaptureFixture) -> None:
    value = SecretValue(SECRET)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("botmox_agent.test").info("using %s", value, extra={"value": value})
    try:
        raise RuntimeError("failed with", value)
    except RuntimeError as error:
        text = "".join(traceback.format_exception(error))
    assert SECRET not in caplog.text
    assert SECRET not in text


def test_values_compare_by_content_and_are_not_hashable() -> None:
    assert SecretValue(SECRET) == SecretValue(SECRET)
    assert SecretValue(SECRET) != SecretValue(SECRET + "x")
    assert SecretValue(SECRET) != SECRET
    with pytest.raises(TypeError):
        hash(SecretValue(SECRET))


def test_a_value_cannot_be_pickled_or_hold_anything_but_a_str() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(SecretValue(SECRET))
    with pytest.raises(TypeError):
        SecretValue(SECRET.encode())  # type: ignore[arg-type]
