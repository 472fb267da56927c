"""The reference's `crunch_node.services` names that contract modules import."""
