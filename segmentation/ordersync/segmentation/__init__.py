"""Segments: the condition language compiled to SQL, the web builder's form, and saved segments.

Shared by the CLI (`ordersync segment`) and the web app; it reads the tables the sink writes
(docs/segments.md) and owns only ``saved_segments``.
"""

from ordersync.segmentation.conditions import SegmentError, build_query, uses_rfm

__all__ = ["SegmentError", "build_query", "uses_rfm"]
