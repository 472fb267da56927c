"""Compatibility import path for contract modules written for the reference engine (crunch-node).

Such modules import their building blocks from `crunch_node.crunch_config` and
`crunch_node.services.realtime_predict`; those names lead to this node's own classes, so an
operator's `crunch_config.py` loads without an edit. Nothing else of the reference lives here.
"""
