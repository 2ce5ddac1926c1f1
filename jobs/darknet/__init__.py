"""The ``darknet`` job kind: cfg parsing and validation, weights checks, log parsing, dataset preparation.

Heavy modules (matplotlib for the loss chart) are imported only where used; this package's pure parts need only
the standard library.
"""

from __future__ import annotations

from jobs.darknet.cfg import CfgEditor, DarknetCfg, Section, load_cfg, parse_cfg
from jobs.darknet.classes import TEMPLATES, adapt_cfg, check_classes, load_template, training_schedule, validate_classes
from jobs.darknet.network import LayerShape, header_bytes, walk_network, weights_size

__all__ = [
    "TEMPLATES",
    "CfgEditor",
    "DarknetCfg",
    "LayerShape",
    "Section",
    "adapt_cfg",
    "check_classes",
    "header_bytes",
    "load_cfg",
    "load_template",
    "parse_cfg",
    "training_schedule",
    "validate_classes",
    "walk_network",
    "weights_size",
]
