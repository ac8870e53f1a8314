"""config/models.py: the models and load_config as a whole; each pass has its own test file."""

from __future__ import annotations

import pytest
import yaml

from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from tests.conftest import CONFIGS, base_config, problems_of


def test_example_config_loads_with_absolute_data_path():
    config = load_config(CONFIGS / "seed.yaml")
    assert config.name == "seed-conv1d"
    assert config.data.path == str((CONFIGS.parent / "data" / "seed.csv").resolve())
    assert [layer.type for layer in config.model.layers] == [
        "Conv1D",
        "MaxPooling1D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert config.model.layers[2].args == {}
    assert config.model.layers[4].args["units"] == "auto"


def test_resolved_config_round_trips(write_config, tiny_csv):
    config = load_config(write_config(base_config(tiny_csv)), ["fit.epochs=2"])
    again = load_config(write_config(yaml.safe_dump(config.to_yaml_dict())))
    assert again.to_yaml_dict() == config.to_yaml_dict()
    assert again.fingerprint() == config.fingerprint()


def test_schema_errors_do_not_import_tensorflow(write_config, tiny_csv):
    import subprocess
    import sys

    config = base_config(tiny_csv, fit={"epochz": 1})
    path = write_config(config)
    code = (
        "import sys, time; t=time.perf_counter()\n"
        "from cnncli.config.models import load_config\n"
        "try:\n    load_config(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "print(round(time.perf_counter()-t, 3))\n"
        "print(sorted(m for m in ('tensorflow','keras','pandas','sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "ConfigErrors"
    assert out[2] == "[]"


def test_name_defaults_to_the_file_name(write_config, tiny_csv):
    config = base_config(tiny_csv)
    del config["name"]
    assert load_config(write_config(config, name="my model.yaml")).name == "my-model"


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_outside_numpy_range_is_a_config_error(write_config, tiny_csv, seed):
    # NumPy seeds take 0..2**32-1; anything else used to reach np.random.seed and exit 1
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv, seed=seed)))
    (problem,) = problems_of(caught)
    assert "seed" in problem.one_line()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "fit.steps_per_execution=99999999999999999999",
            "must be a positive integer up to 2147483647",
        ),
        ("fit.batch_size=2147483648", "expected a value <= 2147483647, got 2147483648"),
        ("fit.epochs=99999999999999999999", "expected a value <= 2147483647"),
        ("split.random_state=-1", "expected a value >= 0, got -1"),
        ("split.random_state=4294967296", "expected a value <= 4294967295"),
        ("data.chunk_rows=2147483648", "expected a value <= 2147483647"),
        ("model.input_shape=[2147483648]", "positive integer up to 2147483647"),
        ("fit.class_weight={a: 1.0e+39}", "expected a value <= 1000000.0, got 1e+39"),
    ],
)
def test_counts_and_seeds_beyond_what_the_backends_hold_are_config_errors(
    write_config, tiny_csv, override, expected
):
    """These reached NumPy, scikit-learn or TensorFlow and exited 1 (OverflowError, ValueError)."""
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [override])
    (problem,) = problems_of(caught)
    assert expected in problem.one_line()
    assert problem.one_line().startswith(f"--set {override}: ")
