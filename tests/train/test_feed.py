"""Feeding Keras: in memory and streamed, the same preprocessing and the same model inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.data.split import TEST, TRAIN, VALIDATION
from cnncli.train.feed import make_row_batches, prepare_data, prepare_streamed
from tests.data.test_chunks import mixed_csv, stream_config


@pytest.mark.parametrize("missing", ["drop", "mean"])
def test_streaming_fits_the_same_preprocessing_on_the_same_rows_as_in_memory(
    tmp_path, write_config, missing
):
    config = stream_config(write_config, mixed_csv(tmp_path / "mixed.csv"), missing=missing)
    in_memory = prepare_data(config, seed=3)
    streamed = prepare_streamed(config, 3)

    # the same rows in each part: the hash rule applied to row numbers after cleaning
    counts = {TRAIN: len(in_memory.split.train_rows), TEST: len(in_memory.split.test_rows)}
    counts[VALIDATION] = len(in_memory.split.validation_rows)
    assert streamed.counts == counts
    assert streamed.rows == in_memory.split.rows
    assert streamed.split.to_json() == in_memory.split.to_json()

    # the same statistics, fitted in one chunked pass (37 rows a chunk) instead of at once
    for ours, theirs in zip(
        streamed.preprocessor.features, in_memory.preprocessor.features, strict=True
    ):
        assert (ours.name, ours.kind, ours.categories) == (
            theirs.name,
            theirs.kind,
            theirs.categories,
        )
        for value in ("center", "scale", "fill", "minimum", "maximum"):
            expected = getattr(theirs, value)
            assert getattr(ours, value) == (
                None if expected is None else pytest.approx(expected, rel=1e-12, abs=1e-12)
            )
    assert streamed.preprocessor.label == in_memory.preprocessor.label
    assert streamed.preprocessor.input_shape == in_memory.preprocessor.input_shape
    assert streamed.task == in_memory.task

    # and the same model inputs, part by part
    for part, x_ref, y_ref in (
        (TRAIN, in_memory.x_train, in_memory.y_train),
        (TEST, in_memory.x_test, in_memory.y_test),
    ):
        blocks = [streamed.arrays(chunk) for chunk in streamed.part_chunks(part) if chunk.rows]
        np.testing.assert_allclose(
            np.concatenate([x for x, _ in blocks]), x_ref, rtol=1e-6, atol=1e-6
        )
        np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), y_ref)


@pytest.mark.slow
def test_row_batches_give_every_training_row_once_per_epoch(tmp_path, write_config):
    config = stream_config(
        write_config, mixed_csv(tmp_path / "mixed.csv", rows=300), missing="mean"
    )
    streamed = prepare_streamed(config, 0)
    in_memory = prepare_data(config, seed=0)
    batches = make_row_batches(streamed, TRAIN, 16, shuffle=True)
    assert len(batches) == -(-streamed.n_train // 16)

    def epoch() -> tuple[np.ndarray, np.ndarray]:
        parts = [batches[index] for index in range(len(batches))]
        assert [len(x) for x, _ in parts[:-1]] == [16] * (len(parts) - 1)
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    def rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        table = np.concatenate([x.reshape(len(x), -1), y], axis=1).round(5)
        return table[np.lexsort(table.T)]

    first, second = epoch(), epoch()
    expected = rows(in_memory.x_train, in_memory.y_train)
    np.testing.assert_allclose(rows(*first), expected, atol=1e-5)
    np.testing.assert_allclose(rows(*second), expected, atol=1e-5)
    assert not np.array_equal(first[0], second[0])  # shuffled anew each epoch
    test = make_row_batches(streamed, TEST, 50)
    x_test = np.concatenate([test[index][0] for index in range(len(test))])
    np.testing.assert_allclose(x_test, in_memory.x_test, atol=1e-6)  # file order, unshuffled


def test_a_classification_with_many_integer_classes_keeps_them_all_while_streaming(
    tmp_path, write_config
):
    from cnncli.config.models import load_config
    from tests.conftest import base_config

    path = tmp_path / "many.csv"
    rows = [f"{index % 7}.5,{index % 11},{index % 60}" for index in range(600)]
    path.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    raw = base_config(path, data={"path": str(path), "chunk_rows": 37}, split={"method": "hash"})
    raw["task"] = "classification"  # 60 classes: more than infer_task would take as classes
    config = load_config(write_config(raw))
    streamed = prepare_streamed(config, 0)
    in_memory = prepare_data(config, 0)
    assert streamed.preprocessor.label.classes == tuple(range(60))
    assert streamed.preprocessor.label == in_memory.preprocessor.label


@pytest.mark.parametrize("streaming", [False, True])
def test_a_test_label_unseen_in_training_names_file_column_and_line(
    tmp_path, write_config, streaming
):
    from cnncli.config.models import load_config
    from cnncli.errors import CnnCliError
    from tests.conftest import base_config, seed_like_rows

    train = tmp_path / "train.csv"
    train.write_text(seed_like_rows(60))
    test = tmp_path / "test.csv"
    test.write_text("x1,x2,x3,label\n2.5,25,6,low\n\n5,55,3,huge\n")  # a blank line before it
    data = {"path": str(train), "test_path": str(test), "streaming": streaming}
    split = {"method": "hash"} if streaming else {}
    config = load_config(write_config(base_config(train, data=data, split=split)))
    with pytest.raises(CnnCliError, match="label 'huge' does not occur in the training rows") as e:
        if streaming:
            prepared = prepare_streamed(config, 0)
            for chunk in prepared.part_chunks(TEST):
                prepared.arrays(chunk)
        else:
            prepare_data(config, 0)
    assert (e.value.where.file, e.value.where.key, e.value.where.line) == (
        str(test),
        "column 'label'",
        4,
    )


def unbalanced_rows(path, rows: int = 600) -> np.ndarray:
    """Rows of two classes, one in 20 'rare' (shifted by 1.5); returns where the rare ones are."""
    rng = np.random.default_rng(1)
    rare = np.arange(rows) % 20 == 0
    x = rng.normal(size=(rows, 2)) + 1.5 * rare[:, None]
    lines = ["a,b,label"] + [
        f"{a:.3f},{b:.3f},{'rare' if r else 'common'}" for (a, b), r in zip(x, rare, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return rare


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_balanced_class_weight_is_n_over_classes_times_count_of_training_rows(
    tmp_path, write_config, streaming
):
    from cnncli.config.models import load_config
    from cnncli.train.feed import class_weights, fit_inputs
    from tests.conftest import base_config

    unbalanced_rows(tmp_path / "rows.csv")
    config = base_config(tmp_path / "rows.csv")
    config["data"]["streaming"] = streaming
    config["fit"]["class_weight"] = "balanced"
    loaded = load_config(write_config(config))
    prepared = (prepare_streamed if streaming else prepare_data)(loaded, 0)
    weights = class_weights(loaded, prepared)
    n = prepared.n_train
    rare = round(n / (2 * weights["rare"]))
    assert weights == pytest.approx({"common": n / (2 * (n - rare)), "rare": n / (2 * rare)})
    assert 0.04 < rare / n < 0.06
    assert fit_inputs(loaded, prepared, 0, weights)["class_weight"] == {
        0: weights["common"],
        1: weights["rare"],
    }
    mapped = load_config(write_config(config), ["fit.class_weight={rare: 4}"])
    assert class_weights(mapped, prepared) == {"common": 1.0, "rare": 4.0}


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_balanced_class_weight_raises_the_minority_class_recall(tmp_path, write_config, streaming):
    """Issue 10: the weather table's rare classes had recall 0; weights make the model see them."""
    import yaml

    from cnncli.config.models import load_config
    from cnncli.runs import open_run
    from cnncli.serve.predictor import Predictor, predict_columns
    from cnncli.train.run import train_run
    from tests.conftest import base_config

    rare = unbalanced_rows(tmp_path / "rows.csv")
    x = np.loadtxt(tmp_path / "rows.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    config = base_config(tmp_path / "rows.csv")
    config["data"]["streaming"] = streaming
    config["compile"] = {"optimizer": {"type": "Adam", "learning_rate": 0.02}}
    config["fit"].update(epochs=15, batch_size=32)
    recall = {}
    for weighting in (None, "balanced"):
        overrides = [f"fit.class_weight={weighting}"] if weighting else []
        run = train_run(load_config(write_config(config), overrides), tmp_path / "runs").run_dir
        predicted = np.array(
            predict_columns(Predictor(open_run(run)), {"a": x[:, 0], "b": x[:, 1]}).labels
        )
        recall[weighting] = float(np.mean(predicted[rare] == "rare"))
        resolved = yaml.safe_load((run / "config.yaml").read_text())["fit"].get("class_weight")
        assert (resolved is None) == (weighting is None)
    assert resolved["rare"] > 9 * resolved["common"]  # `balanced` resolved into numbers
    assert recall[None] < 0.6 and recall["balanced"] > 0.9, recall


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streamed"])
def test_steps_per_execution_beyond_an_epoch_trains_every_step_and_says_so(
    tmp_path, write_config, tiny_csv, streaming
):
    """Hostile review of issue 11: steps_per_execution 1000 on a 4-step epoch was reported to
    train nothing when streamed. Both paths run an epoch's steps per call, and say so."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run
    from tests.conftest import base_config

    config = base_config(tiny_csv)
    config["data"]["streaming"] = streaming
    config["fit"].update(epochs=3, batch_size=4)
    histories, notes = {}, {}
    for steps in (1, 1000):
        said: list[str] = []
        loaded = load_config(write_config(config), [f"fit.steps_per_execution={steps}"])
        result = train_run(loaded, tmp_path / f"runs-{steps}", on_message=said.append)
        histories[steps] = result.history
        notes[steps] = [line for line in said if "steps_per_execution" in line]
    assert notes == {
        1: [],
        1000: [
            "fit.steps_per_execution: 1000 is more than the 4 step(s) of an epoch;"
            " 4 are run per call"
        ],
    }
    assert len(histories[1000]["loss"]) == 3
    assert histories[1000]["loss"][0] != histories[1000]["loss"][-1]  # the weights moved
    assert histories[1000]["loss"] == pytest.approx(histories[1]["loss"])
