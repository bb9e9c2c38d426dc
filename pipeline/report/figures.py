"""What every report figure shares: matplotlib's default style, labels drawn literally (an arm or
variable label with `$` is text, not mathtext), and PNGs without the "Software" metadata, so the
same inputs give byte-identical files."""
from __future__ import annotations

from contextlib import contextmanager

import matplotlib.style


@contextmanager
def figure_style():
    """Draw and save a figure inside this block."""
    with matplotlib.style.context("default"), matplotlib.rc_context({"text.parse_math": False}):
        yield


def save_png(fig, path, dpi: int) -> None:
    """Save ``fig`` as laid out (tight_layout leaves a placeholder layout engine on the figure, for
    which savefig would draw the whole figure once more before drawing it into the file)."""
    fig.set_layout_engine(None)
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
