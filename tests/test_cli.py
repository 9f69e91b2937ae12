"""Command-line checks before Hydra runs (visionzoo/cli.py); the subprocess cases are in test_bad_inputs.py."""

from __future__ import annotations

import pytest

from visionzoo.cli import command_line_problem, first_of_each_sweep
from visionzoo.errors import VisionZooError


def test_sweeps_are_checked_with_their_first_values():
    assert first_of_each_sweep(["seed=1,2", "+extra=range(3,6)", "task.optimizer.lr=interval(0.1,1)", "x=3"]) == [
        "seed=1", "+extra=3", "x=3"]  # an interval has no values to list: left to the sweeper


def test_a_valid_sweep_passes_and_a_misspelt_key_in_it_does_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command_line_problem("train", ["-m", "experiment=ben_synthetic", "seed=1,2", "trainer.max_epochs=1,2"])
    with pytest.raises(VisionZooError, match=r"^unknown config key 'trainer.max_epoch' \(did you mean "
                                             r"trainer.max_epochs\?\); fix the name, or write \+trainer.max_epoch=1 "):
        command_line_problem("train", ["-m", "experiment=ben_synthetic", "trainer.max_epoch=1,2"])


def test_an_unknown_key_inside_a_mapping_override_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VisionZooError, match=r"^unknown config key 'task.fit.iteration' \(did you mean "
                                             r"task.fit.iterations\?\); fix the name, or write "
                                             r"\+task.fit.iteration=\.\.\. to add a new key$"):
        command_line_problem("eval", ["experiment=dip_denoise", "task.fit={iteration: 3}"])


def test_hydra_flags_are_left_to_hydra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command_line_problem("train", ["--cfg", "job", "no_such_key=1"])  # Hydra prints the config or its own error
    command_line_problem("train", ["--config-name=eval", "no_such_key=1"])
    with pytest.raises(VisionZooError, match=r"^missing value for output: pass output=\.\.\.$"):
        command_line_problem("predict", ["experiment=ben_cutout", "input=photos"])


def test_the_console_script_names_its_commands(capsys):
    from visionzoo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "visionzoo {train,eval,predict,serve,export}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "experiment=ben_synthetic"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: unknown command 'fit'")
