"""Operators' and managers' views: queue status, dead letters, case timelines, the district report."""
