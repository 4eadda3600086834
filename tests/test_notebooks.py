"""The notebooks in experiments/notebooks run top to bottom on the shipped data, on CPU, in this Python."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "notebooks").glob("*.ipynb"))
KERNEL = "flexpredict-test"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernel spec that runs this very interpreter (CI's environment), not whatever `python` is first on PATH."""
    from ipykernel.kernelspec import write_kernel_spec

    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / KERNEL)
    return folder


def test_there_are_notebooks():
    assert {p.stem.split("_")[0] for p in NOTEBOOKS} >= {"01", "02", "03"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_dir, tmp_path, monkeypatch):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and not any(cell.outputs or cell.execution_count for cell in code), "commit notebooks without outputs"
    # the kernel inherits this process's environment: Streamlit (the board tests) sets MPLBACKEND=Agg, which would
    # keep the notebooks' plots out of their outputs
    monkeypatch.delenv("MPLBACKEND", raising=False)
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    NotebookClient(notebook, km=manager, timeout=240, resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert images >= 1, "every notebook shows at least one plot"
