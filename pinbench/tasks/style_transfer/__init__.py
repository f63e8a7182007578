"""Text style transfer (PIN Table 2; docs/tasks/style-transfer.md)."""
