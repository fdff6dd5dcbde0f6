"""Live widgets for notebooks: learning curves, GPU monitor, top-k inference, editor.

Every widget is an ipywidgets ``VBox`` with traitlets state and a non-live
mode for tests and static notebooks; charts are plotly ``FigureWidget``s
(plotly ≥ 6 needs ``anywidget``). ``theme="presentation"`` sizes them for a
projector; a configuration has the same colour in every chart.
"""

from .arch_editor import ArchitectureEditor
from .gpu_monitor import GpuMonitor
from .learning_curves import LearningCurves
from .theme import NOTEBOOK, PRESENTATION, Theme, config_colour, get_theme
from .topk import TopK

__all__ = [
    "NOTEBOOK",
    "PRESENTATION",
    "ArchitectureEditor",
    "GpuMonitor",
    "LearningCurves",
    "Theme",
    "TopK",
    "config_colour",
    "get_theme",
]
