"""The docs cannot drift from the code: every command line they show parses, every default, epoch count and file name
they state is the code's, and what ships carries no machine's paths."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import typer

import cli
import config
import rundir
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """Each `python cli.py COMMAND --option ...` the text shows: the command and the options it uses."""
    found = []
    for line in text.splitlines():
        for match in re.finditer(r"python cli\.py ([a-z-]+)((?: +[^ #`|]+)*)", line):
            found.append((match.group(1), re.findall(r"(--[a-z0-9-]+)", match.group(2))))
    return found


def test_every_command_line_in_the_docs_uses_options_that_exist():
    group = typer.main.get_command(cli.app)
    seen = 0
    for doc in DOCS:
        for command, options in commands_in(doc.read_text()):
            assert command in group.commands, f"{doc.name}: `{command}` is not a command"
            known = {opt for p in group.commands[command].params for opt in (*p.opts, *p.secondary_opts)}
            unknown = [o for o in options if o not in known and o != "--help"]
            assert not unknown, f"{doc.name}: `{command}` has no {unknown}"
            seen += 1
    assert seen > 30  # the docs do show the commands


def shipped() -> dict:
    return torch.load(rundir.SHIPPED_GENERATOR, weights_only=True)


def test_what_the_docs_say_of_the_defaults_and_the_shipped_model_is_the_code():
    asset, labels, free = shipped(), config.LABELS, config.LABEL_FREE
    text = {doc.name: doc.read_text() for doc in DOCS}
    for name, body in text.items():
        # "N epochs in batches of B, Adam R" states a default recipe: with labels or without
        for epochs, batch, rate in re.findall(r"(\d+) epochs in batches of (\d+),? (?:at )?Adam ([\d.e-]+)", body):
            assert (int(epochs), int(batch), float(rate)) in [(d["epochs"], d["batch_size"], d["lr_g"])
                                                              for d in (labels, free)], (name, epochs, batch, rate)
        for epochs in re.findall(r"shipped model[^.|]*?\b(\d+) epochs", body):
            assert int(epochs) == asset["epoch"], (name, epochs)
        for width in re.findall(r"shipped model[^.|]*?\bwidth (\d+)", body):
            assert int(width) == asset["config"]["width"], (name, width)
    readme = text["README.md"]
    assert f"default model ({labels['epochs']} epochs" in readme
    rate = f"{labels['lr_g']:.0e}".replace("e-0", "e-")  # 8e-4, as the docs write it
    assert f"{labels['epochs']} epochs in batches of {labels['batch_size']}, Adam {rate}" in readme
    assert f"trained for {asset['epoch']} epochs" in readme
    assert f"width {asset['config']['width']} instead of the default's {config.Config().width}" in readme
    c = asset["config"]
    assert f"shipped model (G width {c['width']}, D width {c['d_width']}, {asset['epoch']} epochs)" in readme
    assert f"conditional DCGAN of width {labels['width']} (" in readme and f"(width {free['width']}, {free['epochs']} epochs" in readme


def test_the_commands_that_train_the_shipped_model_again_ask_for_its_config_and_its_recipe(monkeypatch):
    """The README's and results.md's commands for the shipped model (search.py's R3GAN lever trained through
    gan.train, then resumed at a lower rate) reach gan.train, in turn, with the lever's D and step in place, and end
    with the config the shipped file holds (all but the folders, the data, the device and how often it saved): a
    config alone does not say the loss and D, and a resume that lost its --lr would train at the first rate."""
    import inspect
    import shlex
    import sys

    import gan
    import search
    asked = []
    monkeypatch.setattr(gan, "train", lambda cfg, **hooks: asked.append(  # returns the last checkpoint, as it does
        (cfg, gan.build_discriminator, gan.train_step)) or Path(cfg.checkpoint_dir) / f"gan_epoch_{cfg.epochs}.pth")
    monkeypatch.setattr(gan, "load_checkpoint", lambda path: ({}, asked[-1][0]))  # the run the first command saved
    for doc in (ROOT / "README.md", ROOT / "docs" / "results.md"):
        text = doc.read_text().replace("\\\n", " ")
        commands = re.findall(r"python search\.py (--data-dir [^`#\n]*--train [^`#\n]*)", text)
        assert len(commands) == 2 and "--resume" in commands[1] and "--resume" not in commands[0], (doc.name, commands)
        for command in commands:
            monkeypatch.setattr(sys, "argv", ["search.py", *shlex.split(command)])
            search.main()
        (first, *_), (cfg, build_d, step) = asked
        asked.clear()
        assert first.epochs < cfg.epochs and first.lr_g > cfg.lr_g, doc.name  # the resume went on, at a lower rate
        cfg = dataclasses.asdict(cfg)
        differ = {k for k in cfg if cfg[k] != shipped()["config"][k]}
        assert differ <= {"checkpoint_dir", "sample_dir", "data_dir", "device", "save_every"}, (doc.name, differ)
        opening, closing = (search.LEVERS[re.search(r'--lever "([^"]+)"', c).group(1)] for c in commands)
        assert (build_d, step) == closing[1:3] and opening[1] is search.no_batchnorm, doc.name  # the last one trains on
        game = inspect.getclosurevars(step).nonlocals  # what the docs say the step is: R3GAN's game
        assert (game["loss"], game["r1"], game["r2"], game["mode_seeking"], game["cr"]) == ("rp", 0.3, 0.3, 0, (0, 0))


def test_run_files_the_docs_name_are_the_ones_runs_write():
    run = rundir.RunFolder("ck", "s")
    written = {p.name for p in (run.summary, run.report, run.metrics_csv, run.metrics_json, run.loss_plot,
                                run.final_generator)} | {"gan_epoch_N.pth", "gan_epoch_N_interrupted.pth", "epoch_NNNN.png"}
    for doc in DOCS:
        named = set(re.findall(r"`(?:[\w./-]*/)?((?:gan_epoch|generator|metrics|training_loss|summary|report)\w*\.(?:pth|png|csv|json|md|txt))`",
                               doc.read_text()))
        strange = {n for n in named if n not in written and not re.fullmatch(r"gan_epoch_\d+(_interrupted)?\.pth", n)}
        assert not strange, f"{doc.name} names files no run writes: {strange}"


def test_the_shipped_files_carry_no_machine_paths():
    """The shipped generator's config once held a developer's absolute folders and ../shared/data."""
    saved = shipped()["config"]
    paths = {k: v for k, v in saved.items() if k.endswith("_dir") or k == "images"}
    for key, value in paths.items():
        assert value is None or not (Path(value).is_absolute() or ".." in Path(value).parts or "shared" in value), \
            (key, value)
    assert paths == {"data_dir": "data", "checkpoint_dir": "checkpoints", "sample_dir": "samples", "images": None}


@pytest.mark.parametrize("name", ["generate", "export", "interpolate", "evaluate", "train-classifier"])
def test_python_api_and_cli_share_their_defaults(name):
    """Each command's defaults are declared once in config.py: the CLI's options and the Python functions agree."""
    import inspect

    import digits
    import evaluate
    import gan
    owner, function = {"generate": (config.Drawing, gan.generate_and_plot_samples),
                       "export": (config.Export, digits.export_samples),
                       "interpolate": (config.Walk, digits.interpolate),
                       "evaluate": (config.Scoring, evaluate.evaluate_file),
                       "train-classifier": (config.ClassifierRun, evaluate.train_classifier)}[name]
    defaults = {f.name: f.default for f in dataclasses.fields(owner)}
    command = typer.main.get_command(cli.app).commands[name]
    for param in command.params:
        if param.name in defaults and param.default is not None:
            assert str(getattr(param.default, "value", param.default)) == str(defaults[param.name]), (name, param.name)
    for arg, p in inspect.signature(function).parameters.items():
        if arg in defaults and p.default is not inspect.Parameter.empty and p.default is not None:
            assert p.default == defaults[arg], (name, arg, p.default, defaults[arg])
    assert defaults.get("device", "auto") == "auto"  # the Python API computes where the CLI does
