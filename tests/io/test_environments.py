"""A model's recorded library versions against this environment's (io/environments.py): read
from its requirements.txt and MLmodel, compared by import package (xgboost-cpu is xgboost), and
a model whose libraries differ is never loaded here: it is scored through the environment built
from its pins (tests/compat/test_floor.py scores one there for real)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from magenta_release.core.card import _environment_lines, environment_text
from magenta_release.io import environments, model_files

HERE_SKLEARN = version("scikit-learn")
# A recorded version that is not this environment's (make test-compat runs at 1.5.2 itself).
OTHER_SKLEARN = "1.6.1" if HERE_SKLEARN == "1.5.2" else "1.5.2"


def folder(tmp_path: Path, requirements: str, sklearn_version: str | None = None) -> Path:
    (tmp_path / "requirements.txt").write_text(requirements)
    return tmp_path


def mlmodel(sklearn_version: str | None = None) -> dict[str, Any]:
    flavor: dict[str, Any] = {"pickled_model": "model.skops", "serialization_format": "skops"}
    if sklearn_version:
        flavor["sklearn_version"] = sklearn_version
    return {"flavors": {"sklearn": flavor, "python_function": {"python_version": "3.12.7"}}}


def test_matching_versions_are_scored_here(tmp_path: Path) -> None:
    pins = "\n".join(
        f"{n}=={version(n)}" for n in ("scikit-learn", "skops", "pandas", "numpy", "scipy")
    )
    v = environments.versions(folder(tmp_path, f"mlflow==0.0.1\n{pins}\n"), mlmodel())
    assert v.differing == {}  # mlflow is the wrapper, not compared
    assert "mlflow" not in v.recorded and v.python == "3.12.7"
    verified = model_files.Verified("run x", tmp_path, mlmodel(), v)
    assert verified.scored_here and verified.environment()["scored_in"] == "here"


def test_a_different_scikit_learn_is_not_scored_here(tmp_path: Path) -> None:
    text = f"scikit-learn=={OTHER_SKLEARN}\nxgboost-cpu==2.1.2\nskops\n"
    v = environments.versions(folder(tmp_path, text), mlmodel("1.9.1"))
    assert v.recorded == {"scikit-learn": OTHER_SKLEARN, "xgboost": "2.1.2"}  # requirements win
    assert v.differing["scikit-learn"] == (OTHER_SKLEARN, HERE_SKLEARN)
    assert v.unpinned == ("skops",)
    assert v.pins == (f"scikit-learn=={OTHER_SKLEARN}", "xgboost-cpu==2.1.2")  # as recorded
    verified = model_files.Verified("run x", tmp_path, mlmodel(), v)
    assert not verified.scored_here
    loaded = verified.load()  # nothing is deserialised here: a proxy for that environment
    assert isinstance(loaded, environments.RecordedModel)
    assert loaded.versions is v
    assert verified.environment()["scored_in"] == f"in its recorded environment {v.key()}"


def test_scikit_learn_comes_from_the_flavor_when_unpinned(tmp_path: Path) -> None:
    v = environments.versions(folder(tmp_path, "scikit-learn\nxgboost\n"), mlmodel("1.5.2"))
    assert v.recorded == {"scikit-learn": "1.5.2"} and v.unpinned == ("xgboost",)


def test_the_cache_key_follows_the_pins_and_the_python_minor(tmp_path: Path) -> None:
    a = environments.Versions({}, {}, ("scikit-learn==1.5.2",), "3.11.7")
    assert a.key() == environments.Versions({}, {}, ("scikit-learn==1.5.2",), "3.11.9").key()
    assert a.key() != environments.Versions({}, {}, ("scikit-learn==1.5.3",), "3.11.7").key()
    assert a.key() != environments.Versions({}, {}, ("scikit-learn==1.5.2",), "3.12.1").key()


def test_a_model_that_asks_for_more_trust_is_refused_before_any_environment(
    tmp_path: Path,
) -> None:
    v = environments.versions(folder(tmp_path, "scikit-learn==1.5.2\n"), mlmodel())
    doc = mlmodel()
    doc["flavors"]["sklearn"]["skops_trusted_types"] = ["builtins.eval"]
    from magenta_release.core.errors import IntegrityViolation

    with pytest.raises(IntegrityViolation):
        model_files.Verified("run x", tmp_path, doc, v).load()


def test_the_card_names_the_versions_and_where_it_was_scored() -> None:
    entry = {
        "recorded": {"scikit-learn": "1.5.2", "xgboost": "2.1.2"},
        "here": {"scikit-learn": "1.9.1", "xgboost": "3.2.0"},
        "differing": ["scikit-learn", "xgboost"],
        "python": "3.11.7",
        "unpinned": [],
        "scored_in": "in its recorded environment abc",
    }
    line = environment_text("challenger", entry)
    assert line == (
        "challenger: scikit-learn 1.5.2, xgboost 2.1.2, Python 3.11.7; scored in its recorded "
        "environment abc (here: scikit-learn 1.9.1, xgboost 3.2.0)"
    )
    lines = _environment_lines({"challenger": entry})
    assert lines[0] == "## Library versions" and lines[2] == f"- {line}"
    assert _environment_lines(None) == []  # proposed before versions were recorded
