"""The Python API in a real Jupyter kernel, as a notebook user runs it: generate_and_plot_samples() shows its grid
inline, before and after a training in the same kernel, and writes no PNG while it can show one."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from conftest import ROOT  # noqa: E402


def inline_images(cell) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"])))
            for out in cell.outputs if out.get("output_type") == "display_data" and "image/png" in out.get("data", {})]


def test_the_grid_shows_inline_before_and_after_a_training_in_the_same_kernel(tmp_path, small_data, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the suite runs with Agg; a notebook has its inline backend
    monkeypatch.chdir(tmp_path)  # a PNG saved by mistake would land in ./samples/
    setup = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
             "import matplotlib, gan\n"
             f"cfg = gan.Config(arch='dcgan', width=4, batch_size=32, epochs=1, device='cpu', "
             f"data_dir={str(small_data)!r}, checkpoint_dir='run/ck', sample_dir='run/samples')\n"
             "G = gan.build_generator(cfg)")
    draw = "images = gan.generate_and_plot_samples(G, n=16, seed=0); print(tuple(images.shape), matplotlib.get_backend())"
    train = "import io, rich.console; gan.train(cfg, console=rich.console.Console(file=io.StringIO()))"
    after = ("G, _ = gan.load_generator('run/ck/generator_final.pth')\n" + draw)
    cells = [setup, draw, train, after]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in (nb.cells[1], nb.cells[3]):
        text = "".join(out.get("text", "") for out in cell.outputs if out.get("output_type") == "stream")
        assert "(16, 1, 28, 28)" in text and "inline" in text.lower(), text
        shown = inline_images(cell)
        assert len(shown) == 1, cell.outputs  # one figure, as an inline image
        width, height = shown[0].size
        assert 0.8 < width / height < 1.25 and width > 150  # a 4 x 4 grid of digits, not an empty figure
        assert len(np.unique(np.asarray(shown[0].convert("L")))) > 10  # it holds drawn pixels, not a blank canvas
    assert (tmp_path / "run" / "ck" / "generator_final.pth").is_file()  # the training really ran in the kernel
    assert not (tmp_path / "samples").exists()  # with a display, nothing was saved instead of shown
