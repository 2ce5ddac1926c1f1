"""The ``darknet`` job kind: cfg parsing and validation, weights checks, log parsing, dataset preparation.

The pure parts are re-exported here (standard library and numpy only); the job kind itself
(``jobs.darknet.job.DarknetJob``, spec ``jobs.darknet.spec.DarknetSpec``) is loaded lazily by the registry.
"""

from __future__ import annotations

from jobs.darknet.cfg import CfgEditor, DarknetCfg, Section, load_cfg, parse_cfg
from jobs.darknet.classes import TEMPLATES, adapt_cfg, check_classes, load_template, training_schedule, validate_classes
from jobs.darknet.dataset import DatasetReport, dataset_signature, prepare_dataset, shard_names
from jobs.darknet.logparse import Iteration, Loaded, LogParser, MeanAP, Problem, Saved, Status, parse_line, parse_log
from jobs.darknet.network import LayerShape, header_bytes, walk_network, weights_size
from jobs.darknet.voc import Issue, parse_voc, to_yolo_lines
from jobs.darknet.weights import DarknetWeightsValidator, WeightsHeader, check_pretrained, read_header

__all__ = [
    "TEMPLATES",
    "CfgEditor",
    "DarknetCfg",
    "DarknetWeightsValidator",
    "DatasetReport",
    "Issue",
    "Iteration",
    "LayerShape",
    "Loaded",
    "LogParser",
    "MeanAP",
    "Problem",
    "Saved",
    "Section",
    "Status",
    "WeightsHeader",
    "adapt_cfg",
    "check_classes",
    "check_pretrained",
    "dataset_signature",
    "header_bytes",
    "load_cfg",
    "load_template",
    "parse_cfg",
    "parse_line",
    "parse_log",
    "parse_voc",
    "prepare_dataset",
    "read_header",
    "shard_names",
    "to_yolo_lines",
    "training_schedule",
    "validate_classes",
    "walk_network",
    "weights_size",
]
