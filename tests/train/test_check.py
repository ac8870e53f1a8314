"""validate / summary: names, arguments, data columns, shapes, head and loss, all problems at once."""

from __future__ import annotations

import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.expand import expand_model
from cnncli.config.models import load_config
from cnncli.data.table import load_dataset
from cnncli.errors import CnnCliError, ConfigErrors
from cnncli.train.check import summarize_config
from tests.conftest import (
    CARS_COLUMNS,
    CONFIGS,
    DATA,
    TEST_CONFIGS,
    base_config,
    cars_config,
    cars_rows,
    error_lines,
    seed_like_rows,
)

SEED_NOTES_FIRST_MODEL = f"""name: notes
data:
  path: {DATA / "seed.csv"}
model:
  input_shape: [3, 1]
  layers:
    - {{type: Conv1D, filters: 64, kernel_size: 3, activation: relu}}
    - {{type: MaxPooling1D, pool_size: 2}}
    - Flatten
    - {{type: Dense, units: 64, activation: relu}}
    - {{type: Dense, units: 3, activation: softmax}}
compile:
  optimizer: {{type: Adam, lr: 0.001}}
  loss: categorical_crossentropy
  metrics: [accuracy]
"""


def problems(config_path, overrides=()):
    with pytest.raises(ConfigErrors) as caught:
        summarize_config(load_config(config_path, overrides))
    return caught.value.problems


def test_seed_notes_model_gets_every_problem_with_its_line(write_config):
    path = write_config(SEED_NOTES_FIRST_MODEL, name="notes.yaml")
    lines = [problem.one_line() for problem in problems(path)]
    assert lines == [
        f"{path}:13:27: compile.optimizer.lr: argument 'lr' is Keras 2 spelling; Keras 3 calls it learning_rate",
        f"{path}:8:7: model.layers[1] (MaxPooling1D): input has 1 step but pool_size is 2"
        " (shapes: input (batch, 3, 1) → Conv1D (batch, 1, 64));"
        " use padding: same on the Conv1D above, or a smaller pool_size",
    ]


@pytest.mark.parametrize(
    ("override", "key", "message", "hint"),
    [
        (
            "model.layers[0].type=Conv1d",
            "model.layers[0]",
            "'Conv1d' is not a Keras layer",
            "did you mean 'Conv1D'? names are case-sensitive",
        ),
        (
            "model.layers[3].activation=reul",
            "model.layers[3].activation",
            "unknown activation 'reul'",
            "did you mean 'relu'?",
        ),
        (
            "model.layers[0].nb_filter=8",
            "model.layers[0].nb_filter",
            "argument 'nb_filter' is Keras 2 spelling",
            "Keras 3 calls it filters",
        ),
        (
            "model.layers[3].unit=8",
            "model.layers[3].unit",
            "Dense has no argument 'unit'",
            "did you mean 'units'?",
        ),
        (
            "model.layers[0].padding=full",
            "model.layers[0].padding",
            "The `padding` argument must be a list/tuple or one of {'causal', 'same', 'valid'}. Received: full",
            "see the Keras docs for Conv1D(padding=...)",
        ),
        (
            "model.layers[3].kernel_regularizer=l3",
            "model.layers[3].kernel_regularizer",
            "unknown regularizer 'l3'",
            "did you mean 'l2'?",
        ),
        (
            "model.layers[3].kernel_initializer=he_normall",
            "model.layers[3].kernel_initializer",
            "unknown initializer 'he_normall'",
            "did you mean 'he_normal'?",
        ),
        (
            "compile.optimizer=adamw2",
            "compile.optimizer",
            "unknown optimizer 'adamw2'",
            "did you mean 'AdamW'?",
        ),
        (
            "compile.metrics=[acuracy]",
            "compile.metrics[0]",
            "unknown metric 'acuracy'",
            "did you mean 'accuracy'?",
        ),
        (
            "fit.callbacks=[{type: EarlyStoping}]",
            "fit.callbacks[0]",
            "unknown callback 'EarlyStoping'",
            "did you mean 'EarlyStopping'?",
        ),
        (
            "data.label=lable",
            "data.label",
            "column 'lable' is not in seed.csv",
            "did you mean 'label'? columns are: x1, x2, x3, label",
        ),
        (
            "model.layers[3].units=1000000000000",
            "model.layers[3].units",
            "units: 1,000,000,000,000 is too large (at most 1,048,576)",
            "check for a typo; Dense layers rarely need over a few thousand",
        ),
        (
            "data.features=[x1, x4]",
            "data.features[1]",
            "column 'x4' is not in seed.csv",
            "did you mean 'x3'? columns are: x1, x2, x3, label",
        ),
    ],
)
def test_names_and_arguments(override, key, message, hint):
    found = problems(CONFIGS / "seed.yaml", [override])
    assert len(found) == 1, [p.one_line() for p in found]
    assert found[0].where.key == key
    assert found[0].message == message
    assert found[0].hint == hint


def test_missing_data_file_points_at_data_path():
    (found,) = problems(CONFIGS / "seed.yaml", ["data.test_path=../data/nope.csv"])
    assert found.one_line() == (
        f"--set data.test_path=../data/nope.csv: data.test_path: data file {DATA / 'nope.csv'} not found;"
        " relative paths resolve against the config file's folder"
    )
    assert problems(CONFIGS / "seed.yaml", ["data.path=x.csv"])[0].where.key == "data.path"


def test_constraint_and_regularizer_mappings_are_accepted():
    config = load_config(
        CONFIGS / "seed.yaml",
        [
            "model.layers[3].kernel_regularizer={type: L1L2, l1: 0.0, l2: 0.01}",
            "model.layers[3].kernel_constraint={type: MaxNorm, max_value: 2}",
            "model.layers[3].bias_constraint=non_neg",
            "model.layers[3].activity_regularizer=l2",
        ],
    )
    assert summarize_config(config).layers[3]["params"] == 64 * 64 + 64


@pytest.mark.parametrize(
    ("overrides", "key", "message", "hint"),
    [
        (
            ["model.input_shape=[3]"],
            "model.layers[0]",
            "expects input of rank 3 (batch, steps, channels) but gets (batch, 3)",
            "set model.input_shape to rank 2, e.g. [n, 1]",
        ),
        (
            ["model.input_shape=[2, 2]"],
            "model.input_shape",
            "input_shape [2, 2] holds 4 values but each row has 3 features after one-hot encoding",
            "use a shape whose product is 3, e.g. [3, 1]",
        ),
        (
            ["model.layers[3]={type: LSTM, units: 4}"],
            "model.layers[3]",
            "expects input of rank 3 (batch, steps, channels) but gets (batch, 64)",
            "remove the Flatten above, or move this layer before it",
        ),
        (
            ["model.layers[0]={type: Conv2D, filters: 4, kernel_size: 2}"],
            "model.layers[0]",
            "expects input of rank 4 (batch, height, width, channels) but gets (batch, 3, 1)",
            "set model.input_shape to rank 3, e.g. [n, n, 1]",
        ),
        (
            ["model.layers[0].kernel_size=5", "model.layers[0].padding=valid"],
            "model.layers[0]",
            "input has 3 steps but kernel_size is 5",
            "use padding: same, or a smaller kernel_size",
        ),
    ],
)
def test_shape_problems(overrides, key, message, hint):
    (found,) = problems(CONFIGS / "seed.yaml", overrides)
    assert found.where.key == key
    assert found.message.split(" (shapes:")[0] == message
    assert found.hint == hint


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            ["model.layers[4].units=2"],
            "model.layers[4].units",
            "last layer has 2 unit(s) but the label has 3 classes",
        ),
        (
            ["model.layers[4].activation=sigmoid"],
            "model.layers[4].activation",
            "sigmoid with categorical_crossentropy on 3 classes: the outputs do not sum to 1",
        ),
        (
            ["compile.loss=sparse_categorical_crossentropy", "preprocess.label=onehot"],
            "compile.loss",
            "sparse_categorical_crossentropy expects integer labels but preprocess.label is onehot",
        ),
        (
            ["preprocess.label=sparse"],
            "compile.loss",
            "categorical_crossentropy expects one-hot labels but preprocess.label is sparse",
        ),
        (
            ["compile.loss=binary_crossentropy"],
            "compile.loss",
            "binary_crossentropy is for two classes, the label has 3",
        ),
        (
            ["model.layers[4].activation=linear"],
            "model.layers[4].activation",
            "the last layer has activation linear, so its outputs are not class probabilities",
        ),
    ],
)
def test_head_and_loss_problems(overrides, key, message):
    found = problems(CONFIGS / "seed.yaml", overrides)
    assert [(p.where.key, p.message) for p in found] == [(key, message)]


def test_softmax_on_a_single_unit():
    found = problems(CONFIGS / "gunpoint_conv1d.yaml", ["compile.loss=binary_crossentropy"])
    assert [(p.where.key, p.message) for p in found] == [
        ("model.layers[5]", "softmax over a single unit always outputs 1.0")
    ]
    assert found[0].hint.startswith("use activation: sigmoid with loss: binary_crossentropy")


def test_single_class_label_is_named_as_the_cause(write_config, tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("a,b,y\n1,2,yes\n3,4,yes\n5,6,yes\n")
    path = write_config(
        {
            "data": {"path": str(data), "label": "y"},
            "model": {"layers": [{"type": "Dense", "units": "auto", "activation": "softmax"}]},
        }
    )
    (found,) = problems(path)
    assert found.one_line() == (
        f"{data}: column 'y': the label column has a single class ('yes');"
        " classification needs at least two classes; check data.label"
    )


def test_classification_loss_on_regression_task():
    found = problems(
        CONFIGS / "diabetes.yaml",
        ["compile.loss=categorical_crossentropy", "model.layers[3].activation=softmax"],
    )
    assert [p.message for p in found] == [
        "categorical_crossentropy is a classification loss but the task is regression",
        "a softmax head squashes a regression output into 0..1",
    ]


#: Weights of each example model as Keras counts them (``model.count_params()``), all layers.
EXAMPLE_PARAMS = {
    "diabetes": 897,
    "digits_conv2d": 35_914,
    "gunpoint_conv1d": 5_474,
    "iris": 403,
    "gunpoint_fcn": 265_986,
    "gunpoint_resnet": 506_818,
    "italypower_fcn": 265_986,
    "italypower_resnet": 506_818,
    "seed": 4_611,
    "seed_deep": 29_379,
    "seed_tune": 4_611,  # its base point: the seed model
}


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates(config):
    loaded = load_config(config)
    report = summarize_config(loaded)
    expanded = [node.spec.type for node in expand_model(loaded).nodes]
    assert [row["type"] for row in report.layers] == expanded
    assert sum(row["params"] for row in report.layers) == EXAMPLE_PARAMS[config.stem]


def test_validate_command_prints_all_problems_and_exits_2(runner, write_config):
    path = write_config(SEED_NOTES_FIRST_MODEL, name="notes.yaml")
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"error: {path}:13:27: compile.optimizer.lr: argument 'lr' is Keras 2 spelling"
    )
    assert "Traceback" not in result.stderr


def test_validate_ok_prints_summary(runner):
    result = runner.invoke(cli, ["validate", str(CONFIGS / "seed.yaml")], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "ok: seed-conv1d: 3 input value(s) shaped [3, 1] → 3 classes (onehot labels)"
    )
    assert "(batch, 3, 64)" in result.stdout
    assert "total parameters: 4,611" in result.stdout


def test_summary_shows_shapes_and_parameters(runner):
    result = runner.invoke(
        cli, ["summary", str(CONFIGS / "digits_conv2d.yaml")], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert "(batch, 8, 8, 32)" in result.stdout
    assert "(batch, 10)" in result.stdout


def test_print_config_applies_overrides(runner):
    result = runner.invoke(
        cli,
        ["validate", str(CONFIGS / "seed.yaml"), "--set", "fit.epochs=7", "--print-config"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert "  epochs: 7\n" in result.stdout
    assert str(DATA / "seed.csv") in result.stdout


@pytest.mark.parametrize("path", sorted(TEST_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_configs_fail_with_the_error_in_their_first_line(runner, path, monkeypatch):
    """Each tests/configs file states its expected one-line error in its first line."""
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    monkeypatch.chdir(path.parent)
    result = runner.invoke(cli, ["validate", path.name])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {expected}"]


def test_a_classification_head_without_activation_is_refused_with_the_fix(runner, tmp_path):
    """The case a new user hit: validate said ok, training reached 0.174 accuracy."""
    config = yaml.safe_load((CONFIGS / "iris.yaml").read_text())
    del config["model"]["layers"][-1]["activation"]
    config["data"]["path"] = str(DATA / "iris.csv")
    path = tmp_path / "linear.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "the last layer has activation linear, so its outputs are not class probabilities;"
        " use activation: softmax on the last layer"
    )


# ---------------------------------------------------------------------------------------------
# The data's columns (issue 10): what each becomes, warnings, empty cells


def cars_file(tmp_path, write_config, rows=300, **data):
    (tmp_path / "cars.csv").write_text(cars_rows(rows))
    return write_config(cars_config(tmp_path / "cars.csv", **data))


def test_validate_warns_once_for_an_id_a_free_text_and_a_date_column(
    runner, tmp_path, write_config
):
    """A date and a name column were one-hot encoded into 1,461 and 300 inputs while validate
    said only `ok: 1465 input value(s)`."""
    result = runner.invoke(cli, ["validate", str(cars_file(tmp_path, write_config))])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3 and len(result.stderr.splitlines()) == 3, result.stderr
    assert warnings[0] == (
        "warning: column 'id' looks like an ID or free text (300 distinct value(s) in 300 row(s)):"
        " one-hot encoding makes 300 input(s); set data.columns: {id: drop}"
    )
    assert warnings[1].startswith("warning: column 'name' looks like an ID or free text (300 ")
    dates = int(warnings[2].split("(")[1].split()[0])
    assert 200 < dates <= 300
    assert warnings[2] == (
        f"warning: column 'sold' looks like dates ({dates} distinct value(s) in 300 row(s)):"
        f" one-hot encoding makes {dates} input(s); set data.columns: {{sold: date}}"
        " (7 inputs: year, month, day of week, day of year)"
    )
    assert f"ok: t: {600 + dates + 1 + 3} input value(s)" in result.stdout
    assert (
        "  name: text, 300 distinct in 300 row(s) → looks like an ID or free text" in result.stdout
    )


def test_with_data_columns_validate_is_quiet_and_the_inputs_are_few(runner, tmp_path, write_config):
    config = cars_file(tmp_path, write_config, columns=CARS_COLUMNS)
    result = runner.invoke(cli, ["validate", str(config)], catch_exceptions=False)
    assert result.exit_code == 0 and result.stderr == ""
    assert "ok: t: 11 input value(s)" in result.stdout  # 7 date + km + 3 colours
    assert "  sold: date (data.columns) → 7 inputs (year, month, day of week, day of year)" in (
        result.stdout
    )
    summary = runner.invoke(cli, ["summary", str(config)], catch_exceptions=False)
    assert "  id: not used (data.columns: drop)" in summary.stdout
    as_json = runner.invoke(cli, ["validate", str(config), "--json"], catch_exceptions=False)
    data = yaml.safe_load(as_json.stdout)
    assert data["warnings"] == [] and "price: label" in data["columns"]


def test_validate_reports_empty_cells_under_missing_error_as_train_does(
    runner, tmp_path, write_config
):
    """validate said ok, then train failed on the empty cells."""
    lines = seed_like_rows(30).splitlines()
    for row in (4, 9):
        cells = lines[row].split(",")
        cells[1] = ""
        lines[row] = ",".join(cells)
    (tmp_path / "gaps.csv").write_text("\n".join(lines) + "\n")
    config = write_config(base_config(tmp_path / "gaps.csv"))
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"error: {tmp_path / 'gaps.csv'}:5: column 'x2': 2 empty cell(s) on line(s) 5, 10;"
        " fill them in, or set data.missing: drop or mean"
    )
    with pytest.raises(CnnCliError) as trained:
        load_dataset(load_config(config))
    assert line == f"error: {trained.value.one_line()}"
    ok = runner.invoke(cli, ["validate", str(config), "--set", "data.missing=mean"])
    assert ok.exit_code == 0, ok.output


def test_validate_reads_the_test_file_by_the_same_rules(runner, tmp_path, write_config):
    (tmp_path / "train.csv").write_text(seed_like_rows(30))
    lines = seed_like_rows(10, seed=1).splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[0], "", 1)
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n")
    config = base_config(tmp_path / "train.csv")
    config["data"]["test_path"] = str(tmp_path / "test.csv")
    result = runner.invoke(cli, ["validate", str(write_config(config))])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path / 'test.csv'}:4: column 'x1': 1 empty cell(s) on line(s) 4;"
        " fill them in, or set data.missing: drop or mean\n"
    )
    (tmp_path / "test.csv").write_text("x1,x2,label\n1,2,low\n")
    result = runner.invoke(cli, ["validate", str(write_config(config))])
    assert result.stderr == (
        f"error: {tmp_path / 'test.csv'}:1: 1 column(s) of the training data are missing: x3"
        " (the file has x1, x2, label); a test file needs the same columns as the training file\n"
    )


def test_class_weight_names_only_the_label_s_classes(write_config, tiny_csv):
    """fit.class_weight (issue 10): an unknown class gets a did-you-mean and the class list."""
    from tests.conftest import base_config

    config = base_config(tiny_csv)
    config["fit"]["class_weight"] = {"hgih": 3, "low": 0.5}
    path = write_config(config)
    [problem] = problems(path)
    assert problem.message == "'hgih' is not a class of the label (classes: high, low, medium)"
    assert problem.where.key == "fit.class_weight.hgih" and problem.where.line is not None
    assert problem.hint == "did you mean 'high'?"
    summarize_config(load_config(path, ["fit.class_weight=balanced"]))


def test_class_weight_is_refused_for_regression_and_bad_weights(write_config, tiny_csv):
    from cnncli.errors import CnnCliError
    from tests.conftest import base_config, problems_of

    config = base_config(tiny_csv, task="regression")
    config["data"]["label"] = "x3"
    config["model"]["layers"][-1] = {"type": "Dense", "units": 1}
    config["compile"] = {"loss": "mse", "metrics": ["mae"]}
    config["fit"]["class_weight"] = "balanced"
    [problem] = problems(write_config(config))
    assert problem.message == "class_weight weighs classes, but the task is regression"
    assert problem.where.key == "fit.class_weight"
    for weight, words in [(0, "got 0"), (-0.5, "got -0.5"), (".nan", "finite number")]:
        text = yaml.safe_dump(base_config(tiny_csv)).replace(
            "verbose: false", f"verbose: false\n  class_weight: {{low: {weight}}}"
        )
        with pytest.raises(CnnCliError) as caught:
            load_config(write_config(text))
        [problem] = problems_of(caught)
        assert problem.where.key == "fit.class_weight.low" and words in problem.message
    with pytest.raises(CnnCliError, match="did you mean 'balanced'"):
        load_config(write_config(base_config(tiny_csv)), ["fit.class_weight=balance"])


def huge_model_config(csv):
    from tests.conftest import base_config

    config = base_config(csv)
    config["model"]["layers"][:1] = [
        {"type": "Dense", "units": 2**20, "activation": "relu"},
        {"type": "Dense", "units": 2**20, "activation": "relu"},
    ]
    return config


@pytest.mark.parametrize("command", ["validate", "summary", "train"])
def test_a_model_too_large_for_memory_is_refused_before_it_is_built(
    runner, write_config, tiny_csv, tmp_path, command
):
    """summary showed 1.1e12 parameters and exited 0; train ran out of memory, exit 1 (11.7)."""
    path = write_config(huge_model_config(tiny_csv))
    args = [command, str(path)] + (
        ["--output", str(tmp_path / "runs")] if command == "train" else []
    )
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    [line] = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert line.startswith(f"error: {path}:")
    assert "model.layers[1] (Dense): the model has 1,099,520,016,387 parameters" in line
    assert "(1,099,512,676,352 in this layer); training needs about 17.6 TB of memory" in line
    assert line.endswith(
        "is available; make this layer smaller (fewer units or filters, or pooling before it)"
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_memory_threshold_is_the_memory_available(write_config, tiny_csv, monkeypatch):
    from cnncli.train import check
    from tests.conftest import base_config

    config = base_config(tiny_csv)
    config["model"]["layers"][:1] = [{"type": "Dense", "units": 100}] * 2
    loaded = load_config(write_config(config))
    parameters = 4 * 100 + 100 * 101 + 101 * 3  # 3 inputs → 100 → 100 → 3 classes, with biases
    needed = 4 * (4 * parameters + 2 * 8 * (100 + 100 + 3))  # batch_size 8
    monkeypatch.setattr(check, "available_memory", lambda: needed)
    summarize_config(loaded)
    monkeypatch.setattr(check, "available_memory", lambda: needed - 1)
    with pytest.raises(ConfigErrors, match=r"the model has 10,803 parameters \(10,100 in this"):
        summarize_config(loaded)


def test_a_batch_too_large_for_memory_is_blamed_on_the_batch_size(runner, write_config, tiny_csv):
    """A model of 31 parameters with batch_size 2**31-1 was refused as 'make this layer smaller'."""
    path = write_config(base_config(tiny_csv))
    result = runner.invoke(cli, ["validate", str(path), "--set", "fit.batch_size=2147483647"])
    assert result.exit_code == 2, result.output
    [line] = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert line.startswith(
        "error: --set fit.batch_size=2147483647: fit.batch_size: one batch of 2,147,483,647 rows"
        " needs about "
    )
    assert "for the layers' outputs but" in line and "lower fit.batch_size (at most about" in line


@pytest.mark.parametrize(
    "setting", ["fit.validation_split=0.99", "split.test_size=0.99", "fit.validation_split=0.9"]
)
def test_validate_refuses_a_split_train_would_refuse_with_trains_line(
    runner, write_config, tiny_csv, tmp_path, setting
):
    """Hostile review 3: validate passed fit.validation_split 0.99, train said 'cannot split'."""
    config = write_config(base_config(tiny_csv))
    args = [str(config), "--set", setting]
    checked = runner.invoke(cli, ["validate", *args])
    trained = runner.invoke(cli, ["train", *args, "--output", str(tmp_path / "runs")])
    assert checked.exit_code == trained.exit_code == 2, checked.output + trained.output
    (line,) = error_lines(checked)
    assert "cannot split " in line and line == error_lines(trained)[0]
    assert not (tmp_path / "runs").exists()
