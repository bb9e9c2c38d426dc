"""HTML reports: one per analysis and an index, self-contained (inline CSS and images)."""
