"""The allow-list registry: every Keras name classified, refusals, case rules, confined paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError, ConfigErrors, Location
from cnncli.model import registry
from cnncli.model.build import make_callbacks
from cnncli.model.registry import NAMESPACES, confine_path, lookup
from cnncli.runs import MANIFEST_FILENAME
from cnncli.train.check import summarize_config
from tests.conftest import base_config
from tests.model.conftest import WHERE

LAYERS, CALLBACKS, OPTIMIZERS = registry.LAYERS, registry.CALLBACKS, registry.OPTIMIZERS
LOSSES, METRICS, ACTIVATIONS = registry.LOSSES, registry.METRICS, registry.ACTIVATIONS


# ---------------------------------------------------------------------------------------------
# Every name the installed Keras exports is classified


@pytest.mark.parametrize("module", sorted(NAMESPACES))
def test_every_exported_name_is_classified(keras, module):
    namespace = NAMESPACES[module]
    unclassified = sorted(registry.exported_names(keras, namespace) - namespace.classified())
    assert unclassified == [], (
        f"keras.{module} exports {', '.join(unclassified)}, which cnncli/model/registry.py has not"
        " classified: allow it, refuse it with a reason, or confine its paths"
    )


@pytest.mark.parametrize("module", sorted(NAMESPACES))
def test_every_allowed_name_resolves_in_the_installed_keras(keras, module, monkeypatch):
    namespace = NAMESPACES[module]
    for name in list(namespace.needs):  # the optional package's absence is tested below
        monkeypatch.setitem(namespace.needs, name, ("json", "json"))
    for name in sorted(namespace.allowed | set(namespace.confined)):
        found = lookup(namespace, name, WHERE, keras)
        assert found is getattr(registry.keras_module(keras, namespace), name)


@pytest.mark.parametrize("module", ["losses", "metrics"])
def test_aliases_are_names_keras_resolves(keras, module):
    namespace = NAMESPACES[module]
    for name in sorted(namespace.aliases - {"accuracy", "acc", "crossentropy", "ce"}):
        assert callable(registry.keras_module(keras, namespace).get(name)), name
        assert lookup(namespace, name, WHERE, keras) == name


def test_a_class_keras_adds_later_is_refused_until_reviewed(keras, monkeypatch):
    class Eval(keras.layers.Layer):  # what a future Keras might add
        pass

    monkeypatch.setattr(keras.layers, "EvalLayer", Eval, raising=False)
    with pytest.raises(CnnCliError) as caught:
        lookup(LAYERS, "EvalLayer", WHERE, keras)
    assert caught.value.message == "layer type 'EvalLayer' is not yet reviewed by cnncli"
    assert caught.value.where.key == "model.layers[0]"
    assert "cnncli/model/registry.py" in caught.value.hint


def test_no_name_is_both_allowed_and_refused():
    for namespace in NAMESPACES.values():
        allowed = namespace.allowed | set(namespace.confined) | namespace.aliases
        assert not allowed & set(namespace.refused), namespace.module
        assert not namespace.allowed & set(namespace.confined), namespace.module


def test_registry_import_does_not_import_keras():
    import subprocess
    import sys

    code = (
        "import sys, cnncli.model.registry; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Refusals, through validate


@pytest.mark.parametrize(
    ("section", "spec", "key", "words"),
    [
        (
            "layers",
            {"type": "Lambda", "function": "os.system"},
            "model.layers[0].type (Lambda)",
            "layer type 'Lambda' is not allowed: it runs Python code;"
            " configs cannot run code; build the computation from ordinary layers",
        ),
        (
            "layers",
            {"type": "TFSMLayer", "filepath": "/tmp/model"},
            "model.layers[0].type (TFSMLayer)",
            "layer type 'TFSMLayer' is not allowed: it loads a saved model from outside the config",
        ),
        (
            "callbacks",
            {"type": "LambdaCallback", "on_epoch_end": "print"},
            "fit.callbacks[0].type (LambdaCallback)",
            "callback 'LambdaCallback' is not allowed: it runs Python code; configs cannot run code",
        ),
        (
            "callbacks",
            {"type": "RemoteMonitor", "root": "http://example.com"},
            "fit.callbacks[0].type (RemoteMonitor)",
            "callback 'RemoteMonitor' is not allowed: it sends training data to a server",
        ),
    ],
)
def test_code_running_names_are_refused_by_validate(
    runner, write_config, tiny_csv, section, spec, key, words
):
    config = base_config(tiny_csv)
    if section == "layers":
        config["model"]["layers"].insert(0, spec)
    else:
        config["fit"]["callbacks"] = [spec]
    path = write_config(config)
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"error: {re.escape(str(path))}:\d+:\d+: .*", lines[0]), lines[0]
    assert f": {key}: {words}" in lines[0]


@pytest.mark.parametrize("layer", ["Lambda", "TFSMLayer", "InputLayer"])
def test_code_running_layers_are_refused(write_config, tiny_csv, layer):
    config = base_config(tiny_csv)
    config["model"]["layers"].insert(0, {"type": layer, "function": "os.system"})
    with pytest.raises(ConfigErrors) as caught:
        summarize_config(load_config(write_config(config)))
    (problem,) = caught.value.problems
    assert problem.where.key == "model.layers[0].type"
    assert f"layer type '{layer}' is not allowed" in problem.message


def test_input_layer_points_at_input_shape(keras):
    with pytest.raises(CnnCliError) as caught:
        lookup(LAYERS, "InputLayer", WHERE, keras)
    assert caught.value.hint == "set model.input_shape instead"


def test_serialized_keras_object_in_an_argument_is_refused(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["model"]["layers"][0]["activation"] = {
        "module": "subprocess",
        "class_name": "Popen",
        "config": {"args": ["touch", "/tmp/x"]},
    }
    with pytest.raises(ConfigErrors) as caught:
        summarize_config(load_config(write_config(config)))
    (problem,) = caught.value.problems
    assert problem.where.key == "model.layers[0].activation"
    assert problem.message == "a mapping in Keras' serialized form would make Keras import code"


# ---------------------------------------------------------------------------------------------
# Case rules and did-you-mean


def test_layers_are_exact_with_a_case_hint(keras):
    with pytest.raises(CnnCliError) as caught:
        lookup(LAYERS, "Conv1d", WHERE, keras)
    assert caught.value.message == "'Conv1d' is not a Keras layer"
    assert caught.value.hint == "did you mean 'Conv1D'? names are case-sensitive"
    assert caught.value.where == WHERE


def test_near_miss_gets_a_close_name(keras):
    with pytest.raises(CnnCliError) as caught:
        lookup(LAYERS, "Dense2", WHERE, keras)
    assert caught.value.hint == "did you mean 'Dense'?"


def test_optimizers_take_any_case_as_keras_does(keras):
    assert lookup(OPTIMIZERS, "adam", WHERE, keras) is keras.optimizers.Adam
    assert lookup(OPTIMIZERS, "RMSPROP", WHERE, keras) is keras.optimizers.RMSprop
    with pytest.raises(CnnCliError, match="is not allowed: it wraps other optimizer objects"):
        lookup(OPTIMIZERS, "lossscaleoptimizer", WHERE, keras)


def test_losses_by_function_or_class_name(keras):
    assert lookup(LOSSES, "huber", WHERE, keras) is keras.losses.huber
    assert lookup(LOSSES, "Huber", WHERE, keras) is keras.losses.Huber
    assert lookup(LOSSES, "mse", WHERE, keras) == "mse"
    with pytest.raises(CnnCliError) as caught:
        lookup(LOSSES, "hubber", WHERE, keras)
    assert caught.value.message == "unknown loss 'hubber'"
    assert caught.value.hint == "did you mean 'huber'?"


def test_activations_are_exact(keras):
    assert lookup(ACTIVATIONS, "relu", WHERE, keras) is keras.activations.relu
    with pytest.raises(CnnCliError) as caught:
        lookup(ACTIVATIONS, "Relu", WHERE, keras)
    assert caught.value.message == "unknown activation 'Relu'"
    assert caught.value.hint == "did you mean 'relu'? names are case-sensitive"


def test_compile_metric_aliases_stay_names(keras):
    assert lookup(METRICS, "accuracy", WHERE, keras) == "accuracy"
    assert lookup(METRICS, "acc", WHERE, keras) == "acc"


def test_refused_names_are_not_suggested(keras):
    with pytest.raises(CnnCliError) as caught:
        lookup(CALLBACKS, "LambdaCallbak", WHERE, keras)
    assert caught.value.message == "unknown callback 'LambdaCallbak'"
    assert "LambdaCallback" not in caught.value.hint


# ---------------------------------------------------------------------------------------------
# Callbacks that write files: confined to the run folder


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("/tmp/x.csv", "'/tmp/x.csv' is an absolute path"),
        ("../x.csv", "'../x.csv' leaves the run folder"),
        ("logs/../../x.csv", "leaves the run folder"),
        (".", "names the run folder itself"),
        (".hidden.csv", "a hidden file"),
        ("model.keras", "would overwrite the run's own model.keras"),
        ("history.csv", "would overwrite the run's own history.csv"),
        ("checkpoints/x.keras", "would overwrite the run's own checkpoints"),
        ("m-{epoch:/>6}.keras", "has a format field other than a plain number"),
        ("m-{epoch.__class__}.keras", "has a format field other than a plain number"),
        ("gs://bucket/x.csv", "is not a plain relative path"),
        ("~/x.csv", "is not a plain relative path"),
        ("logs/x\x00.csv", "is not a plain relative path"),
        (7, "expected a path inside the run folder, got 7"),
    ],
)
def test_paths_that_leave_the_run_are_refused(tmp_path, value, words):
    where = Location(key="fit.callbacks[0].filename")
    for run_dir in (None, tmp_path):
        with pytest.raises(CnnCliError) as caught:
            confine_path(value, where, run_dir)
        assert words in caught.value.message
        assert caught.value.where is where
        assert caught.value.hint.startswith(("give a path relative to the run folder", "use"))


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        ("logs/history.csv", "logs/history.csv"),
        ("./logs/./history.csv", "logs/history.csv"),
        ("best-{epoch:02d}-{val_loss:.3f}.keras", "best-{epoch:02d}-{val_loss:.3f}.keras"),
    ],
)
def test_relative_paths_resolve_inside_the_run(tmp_path, value, inside):
    where = Location(key="fit.callbacks[0].filename")
    assert confine_path(value, where, None) == inside
    assert confine_path(value, where, tmp_path) == str(tmp_path / inside)


def test_tensorboard_default_log_dir_is_inside_the_run(
    write_config, tiny_csv, tmp_path, keras, monkeypatch
):
    # The callback is only constructed here, which needs no tensorboard package: let it pass.
    monkeypatch.setitem(registry.CALLBACKS.needs, "TensorBoard", ("json", "json"))
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [
        {"type": "TensorBoard"},
        {"type": "CSVLogger", "filename": "h.csv"},
    ]
    board, logger = make_callbacks(load_config(write_config(config)), keras, tmp_path / "run")
    assert board.log_dir == str(tmp_path / "run" / "logs")
    assert logger.filename == str(tmp_path / "run" / "h.csv")


def test_callback_path_error_names_the_key(write_config, tiny_csv, keras):
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [{"type": "ModelCheckpoint", "filepath": "/tmp/best.keras"}]
    with pytest.raises(CnnCliError) as caught:
        make_callbacks(load_config(write_config(config)), keras)
    assert caught.value.where.key == "fit.callbacks[0].filepath"
    assert caught.value.where.line is not None
    assert caught.value.hint == "give a path relative to the run folder, e.g. logs/history.csv"


@pytest.mark.slow
def test_csv_logger_writes_inside_the_run(runner, write_config, tiny_csv, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a path Keras took as given would land here
    config = base_config(tiny_csv)
    config["fit"].update(epochs=2, callbacks=[{"type": "CSVLogger", "filename": "logs/fit.csv"}])
    result = runner.invoke(
        cli,
        ["train", str(write_config(config)), "--output", str(tmp_path / "runs"), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    lines = (run_dir / "logs" / "fit.csv").read_text().splitlines()
    assert lines[0].split(",")[0] == "epoch"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1"]
    manifest = json.loads((run_dir / MANIFEST_FILENAME).read_text())
    assert "logs/fit.csv" in json.dumps(manifest)
    assert list(work.iterdir()) == []
    predicted = runner.invoke(cli, ["predict", str(run_dir), "--input", "1,2,3"])
    assert predicted.exit_code == 0, predicted.stderr  # the extra file verifies with the run


@pytest.mark.parametrize("filename", ["ABSOLUTE", "../x.csv"])
@pytest.mark.parametrize("command", ["validate", "train"])
def test_csv_logger_outside_the_run_is_refused_before_writing(
    runner, write_config, tiny_csv, tmp_path, monkeypatch, filename, command
):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    target = tmp_path / "x.csv"
    target.write_text("keep me\n")
    filename = str(target) if filename == "ABSOLUTE" else filename
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [{"type": "CSVLogger", "filename": filename}]
    path = write_config(config)
    args = [command, str(path)] + (
        ["--output", str(tmp_path / "runs")] if command == "train" else []
    )
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "fit.callbacks[0].filename (CSVLogger): " in line
    assert ("is an absolute path" if filename.startswith("/") else "leaves the run folder") in line
    assert line.endswith("give a path relative to the run folder, e.g. logs/history.csv")
    assert target.read_text() == "keep me\n"
    assert list(work.iterdir()) == []
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_registry_tables_name_strings_only():
    for namespace in NAMESPACES.values():
        for name in namespace.classified():
            assert isinstance(name, str) and name.isidentifier(), name
    assert registry.NOT_OBJECTS.isdisjoint(LAYERS.classified())


def test_a_folder_that_cannot_be_made_in_the_run_is_one_line(tmp_path):
    (tmp_path / "logs").write_text("a file where the folder would go")
    with pytest.raises(CnnCliError) as caught:
        confine_path("logs/fit.csv", Location(key="fit.callbacks[0].filename"), tmp_path)
    assert caught.value.message.startswith("cannot create 'logs' in the run: ")
    assert caught.value.where.key == "fit.callbacks[0].filename"


@pytest.mark.parametrize("link", ["logs", "logs/fit.csv"])
def test_a_symlink_in_the_staging_folder_cannot_lead_a_callback_out(tmp_path, link):
    # a resumed run reuses its staging folder: a link planted there must not be followed
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    run_dir.mkdir()
    outside.mkdir()
    if link == "logs":
        (run_dir / "logs").symlink_to(outside)
    else:
        (run_dir / "logs").mkdir()
        (run_dir / "logs" / "fit.csv").symlink_to(outside / "fit.csv")
    with pytest.raises(CnnCliError) as caught:
        confine_path("logs/fit.csv", Location(key="fit.callbacks[0].filename"), run_dir)
    assert "symbolic link" in caught.value.message
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("command", ["validate", "train"])
def test_a_callback_whose_package_is_missing_is_one_line_and_exit_2(
    runner, write_config, tiny_csv, tmp_path, monkeypatch, command
):
    """TensorBoard needs the tensorboard package, which cnncli's extras do not install."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "tensorboard" else find_spec(name, *args),
    )
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [{"type": "TensorBoard", "log_dir": "logs"}]
    args = [command, str(write_config(config))]
    args += ["--output", str(tmp_path / "runs")] if command == "train" else []
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "fit.callbacks[0].type (TensorBoard): callback 'TensorBoard' needs the tensorboard"
        " package, which is not installed; pip install tensorboard, or remove the callback"
    )
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_name_longer_than_the_file_system_holds_is_refused_by_validate(
    runner, write_config, tiny_csv, tmp_path
):
    """Hostile review: a 300-character CSVLogger filename passed validate, then train failed
    after the first epoch with a hint about something else."""
    from cnncli.cli import cli

    where = Location(key="fit.callbacks[0].filename")
    longest = "logs/" + "é" * 127 + "a.csv"  # a name of 132 characters but 259 bytes
    assert confine_path("logs/" + "a" * 255, where, tmp_path) == str(
        tmp_path / "logs" / ("a" * 255)
    )
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [{"type": "CSVLogger", "filename": "a" * 300}]
    result = runner.invoke(cli, ["validate", str(write_config(config))])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert re.fullmatch(
        r"error: .*config1\.yaml:\d+:\d+: fit\.callbacks\[0\]\.filename \(CSVLogger\): 'a{58}…"
        r" \(302 characters\) holds a name of 300 bytes, but a file or folder name holds at most"
        r" 255; choose a shorter name",
        line,
    ), line
    with pytest.raises(CnnCliError, match="holds a name of 259 bytes"):
        confine_path(longest, where, None)  # bytes, not characters: é is two
    for value in ("/" + "a" * 100_000, ["a"] * 100_000):  # any refusal: the value is cut
        with pytest.raises(CnnCliError) as caught:
            confine_path(value, where, None)
        assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("x{.keras", "is not a valid name template (expected '}' before end of string)"),
        ("x}.keras", "is not a valid name template (Single '}' encountered"),
        ("{nosuch}.keras", "has the field {nosuch}, which training does not log"),
        ("{val_loss:.2f}.keras", "has the field {val_loss}, which training does not log"),
        ("{epoch:0300d}.keras", "formats {epoch} wider than the 255 bytes a file name may have"),
        ("{epoch:099999999d}.keras", "formats {epoch} wider than the 255 bytes"),
        ("{loss:.99999999f}.keras", "formats {loss} wider than the 255 bytes"),
        ("{loss:d}.keras", "cannot be formatted: Unknown format code 'd'"),
        ("{epoch:0250d}-more.keras", "makes a name of 261 bytes (at epoch 1)"),
    ],
)
def test_callback_templates_that_would_fail_after_an_epoch_are_refused(value, words):
    """Hostile review: validate accepted these, then train failed after epoch 1 with exit 1
    (ValueError, KeyError), or with a 100 MB error line."""
    where = Location(key="fit.callbacks[0].filepath")
    with pytest.raises(CnnCliError) as caught:
        confine_path(value, where, None, logs=["loss", "accuracy"])
    assert words in caught.value.message
    assert len(caught.value.one_line()) < 300
    assert confine_path("{epoch:03d}-{accuracy:.2f}.keras", where, None, ["loss", "accuracy"])


def test_log_names_follow_the_metrics_and_the_validation_split(write_config, tiny_csv):
    from cnncli.config.models import load_config
    from cnncli.model.build import log_names

    config = base_config(tiny_csv)
    assert log_names(load_config(write_config(config))) == ["loss", "accuracy"]
    del config["compile"]["metrics"]  # either task's default
    assert log_names(load_config(write_config(config))) == ["loss", "accuracy", "mae"]
    config["compile"]["metrics"] = ["accuracy", {"type": "AUC"}]
    config["fit"] = {"epochs": 1, "validation_split": 0.25}
    assert log_names(load_config(write_config(config))) == [
        "loss",
        "accuracy",
        "AUC",
        "auc",
        "val_loss",
        "val_accuracy",
        "val_AUC",
        "val_auc",
    ]


@pytest.mark.slow
def test_a_checkpoint_template_with_logged_names_trains(runner, write_config, tiny_csv, tmp_path):
    """Every name log_names allows is one Keras logs: a metric class is named for its field."""
    from cnncli.cli import cli

    config = base_config(tiny_csv)
    config["compile"]["metrics"] = ["accuracy", {"type": "AUC"}]
    config["fit"] = {
        "epochs": 1,
        "validation_split": 0.25,
        "callbacks": [
            {"type": "ModelCheckpoint", "filepath": "m/{epoch:02d}-{val_auc:.2f}-{loss:.1f}.keras"}
        ],
    }
    path = write_config(config)
    assert runner.invoke(cli, ["validate", str(path)], catch_exceptions=False).exit_code == 0
    result = runner.invoke(
        cli, ["train", str(path), "--output", str(tmp_path / "runs")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    [saved] = (tmp_path / "runs" / "latest" / "m").iterdir()
    assert re.fullmatch(r"01-\d\.\d\d-\d+\.\d\.keras", saved.name)
