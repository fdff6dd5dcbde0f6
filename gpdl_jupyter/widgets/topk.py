"""Top-k inference: pick a stored image or upload one, see the k most probable classes.

Inference runs in the database (``gpdl_backend.predict.predict_image``); the
client only encodes a stored image to PNG to show it and to send it.

Example::

    TopK(dsn, "models", image_table="test_images")          # best configuration, k=3
    TopK(dsn, "models", mst_key=2, k=5).predict(open("shoe.png", "rb").read())
"""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from traitlets import Int, List, TraitError, Unicode, observe, validate

from gpdl_backend.errors import GpdlError, UsageError
from gpdl_backend.images.samples import list_images, read_image, to_png
from gpdl_backend.mop.progress import best_mst_key, read_progress
from gpdl_jupyter import api

from ._config_table import config_phrases
from ._names import model_names
from ._support import auto_width, chart_box, error_output, guarded, style_tag, sync_figure
from .theme import Theme, config_colour, get_theme

__all__ = ["TopK"]

DISPLAY_SIZE = 192
"""Small stored images are scaled up (nearest neighbour) to about this many pixels."""
PLACEHOLDER = "(choose a stored image)"


class TopK(widgets.VBox):
    """An image and a bar chart of its ``k`` most probable classes.

    Args:
        dsn: where the database is.
        model_table: a trained model table (``fit_multiple_model``'s output).
        mst_key: the configuration. Defaults to None: the best by final
            validation metric (else training metric) in ``<model_table>_info``.
        k: classes shown. Defaults to 3.
        image_table: an image table to choose stored images from. Defaults to
            None (upload only).
        images_listed: most stored images in the chooser. Defaults to 200.
        theme: ``"notebook"``, ``"presentation"`` or a ``Theme``. Defaults to notebook.

    Raises:
        UsageError: no such model table or image table.
    """

    k = Int(3, help="classes shown")
    mst_key = Int(help="the configuration that predicts")
    image_name = Unicode("", help="the image shown")
    predictions = List(help="the last prediction: class_name, class_value, prob, rank")
    error = Unicode("", help="the last error shown")

    def __init__(self, dsn: str, model_table: str, mst_key: int | None = None, k: int = 3,
                 image_table: str | None = None, images_listed: int = 200,
                 theme: Theme | str | None = None, **kwargs: Any) -> None:
        self.dsn = dsn
        self.model_table = model_table
        self.image_table = image_table
        self.theme = get_theme(theme)
        self._lock = threading.RLock()
        self._image: bytes | None = None
        self._shown: tuple[str, bytes, str] = ("", b"", "")
        chosen_best = mst_key is None
        key = best_mst_key(dsn, model_table) if chosen_best else mst_key

        self.header = widgets.HTML()
        refs = list_images(dsn, image_table, images_listed) if image_table else []
        self.image_dropdown = widgets.Dropdown(
            description="Image", options=[(PLACEHOLDER, "")] + [
                (f"{r.name} ({r.label})" if r.label else r.name, r.fullpath) for r in refs],
            value="", layout=widgets.Layout(width="auto",
                                           display=None if image_table else "none"))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False,
                                         description="Upload image", layout=auto_width())
        # Hidden until there is an image: an empty Image shows a broken-image icon.
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{DISPLAY_SIZE}px", min_width=f"{DISPLAY_SIZE}px", object_fit="contain",
            display="none"))
        how = "Choose a stored image or upload one" if image_table else "Upload an image"
        self.caption = widgets.HTML(f"<i>{how}: its top {k} classes appear here.</i>",
                                    layout=widgets.Layout(width=f"{DISPLAY_SIZE}px"))
        self.figure = go.FigureWidget(
            data=[go.Bar(x=[], y=[], orientation="h", texttemplate="%{x:.1%}",
                         textposition="auto", hovertemplate="%{y}: %{x:.2%}<extra></extra>")],
            layout=self.theme.layout(
                height=max(240, int(self.theme.height * 0.7)),
                xaxis=dict(range=[0, 1], tickformat=".0%", title="probability", visible=False),
                yaxis=dict(autorange="reversed", visible=False),
                margin=dict(l=140, r=20, t=60, b=50),
                annotations=[_waiting_note(image_table is not None)]))
        self.errors = error_output()
        super().__init__(children=[
            style_tag(self.theme.css()), self.header,
            widgets.HBox([self.image_dropdown, self.upload]),
            widgets.HBox([widgets.VBox([self.image, self.caption]), chart_box(self.figure)]),
            self.errors], **kwargs)
        self.add_class(self.theme.css_class)
        self.add_class("gpdl-topk")
        self._chosen_best = chosen_best
        self.k = k
        self.mst_key = key
        self.image_dropdown.observe(guarded(self.errors, self._set_error, self._image_chosen),
                                    names="value")
        self.upload.observe(guarded(self.errors, self._set_error, self._uploaded),
                            names="value")

    # --- public API -------------------------------------------------------------------
    @property
    def bars_count(self) -> int:
        """Bars drawn (k once an image was classified, 0 before)."""
        return len(self.figure.data[0].y or ())

    def snapshot(self) -> go.Figure:
        """A static copy of the chart (for exported HTML and slides, where widgets do not run)."""
        with self._lock:
            return go.Figure(self.figure)

    def predict(self, image_bytes: bytes, name: str = "uploaded image") -> list[dict]:
        """Classify a PNG/JPEG in the database, show it and its top-k bars.

        Returns:
            ``[{"class_name", "class_value", "prob", "rank"}, ...]``, best first.

        Raises:
            UsageError: a bad image, model or ``k``.
            ImageDecodeError: the bytes are not an image.
        """
        image = bytes(image_bytes)
        rows = self._classify(image, name, shown_upload(image), html.escape(name))
        if self.image_dropdown.value:  # it no longer names the image shown
            self.image_dropdown.value = ""  # the placeholder ("", as None selects nothing)
        return rows

    def choose(self, fullpath: str) -> list[dict]:
        """Classify a stored image of ``image_table`` (by its full path) and show it.

        Raises:
            UsageError: no image table was given, or it has no such image.
        """
        if not self.image_table:
            raise UsageError("no image_table was given to choose from")
        stored = read_image(self.dsn, self.image_table, fullpath)
        label = html.escape(stored.ref.label) if stored.ref.label else "unknown"
        return self._classify(to_png(stored.pixels), stored.ref.name,
                              to_png(stored.pixels, min_size=DISPLAY_SIZE),
                              f"{html.escape(stored.ref.name)}<br>true class: <b>{label}</b>")

    # --- validation and observers --------------------------------------------------------
    @validate("k")
    def _check_k(self, proposal: dict) -> int:
        if proposal["value"] < 1:
            raise TraitError("k must be at least 1")
        return proposal["value"]

    @observe("k", "mst_key")
    def _model_changed(self, change: dict) -> None:
        if change["old"] == change["new"] or not hasattr(self, "header"):
            return
        self.header.value = self._header()
        if self._image is not None:
            guarded(self.errors, self._set_error,
                    lambda: self._classify(self._image, *self._shown))()

    def _image_chosen(self, change: dict) -> None:
        if change["new"] and change["new"] != change["old"]:
            self.choose(change["new"])

    def _uploaded(self, change: dict) -> None:
        files = change["new"]
        if files:
            upload = files[0]
            self.predict(bytes(upload["content"]), upload.get("name") or "uploaded image")

    def _set_error(self, message: str) -> None:
        if self.error != message:
            self.error = message

    # --- drawing -------------------------------------------------------------------------
    def _header(self) -> str:
        how = " (best by final metric)" if self._chosen_best else ""
        return (f"<b>{html.escape(self.model_table)}</b> · configuration mst "
                f"{self.mst_key}{how}{self._config_text()} · top {self.k}")

    def _config_text(self) -> str:
        try:
            config = read_progress(self.dsn, self.model_table).config(self.mst_key)
        except GpdlError:  # a plain model table without _info: the key alone is enough
            return ""
        phrases = config_phrases(config, model_names(self.dsn, self.model_table))
        return html.escape(" · " + " · ".join(phrases))  # the model's name, as in the curves

    def _classify(self, image: bytes, name: str, shown: bytes, caption: str) -> list[dict]:
        rows = api.predict_image(self.model_table, image, mst_key=self.mst_key, k=self.k,
                                 dsn=self.dsn)
        with self._lock:
            self._image, self._shown = image, (name, shown, caption)
            if self.image_name != name:
                self.image_name = name
            self.predictions = [dict(r) for r in rows]
            self.image.format = "jpeg" if shown[:3] == b"\xff\xd8\xff" else "png"
            self.image.value = shown
            self.image.layout.display = None
            self.caption.value = caption
            with self.figure.batch_update():
                self.figure.layout.annotations = []
                self.figure.layout.xaxis.visible = self.figure.layout.yaxis.visible = True
                bars = self.figure.data[0]
                bars.y = [str(r["class_name"]) for r in rows]
                bars.x = [float(r["prob"]) for r in rows]
                bars.marker.color = config_colour(self.mst_key)
                self.figure.layout.title.text = f"top {len(rows)}: {html.escape(name)}"
            sync_figure(self.figure)
        return rows


def shown_upload(image: bytes) -> bytes:
    """An upload as shown: a small one scaled up sharply, as stored images are.

    The browser would stretch a 28×28 upload smoothly into a blur. Bytes that
    do not decode are shown as sent: the server's decode names the problem.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as opened:
            if max(opened.size) >= DISPLAY_SIZE:
                return image
            pixels = np.asarray(opened.convert("L" if opened.mode == "L" else "RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return image
    return to_png(pixels.reshape(*pixels.shape[:2], -1), min_size=DISPLAY_SIZE)


def _waiting_note(stored: bool) -> dict:
    """The chart's text before the first image (instead of empty −1..4 axes)."""
    how = "choose a stored image or upload one" if stored else "upload an image"
    return dict(text=f"no image yet: {how}", x=0.5, y=0.5, xref="paper", yref="paper",
                showarrow=False, font=dict(color="#7f7f7f"))
