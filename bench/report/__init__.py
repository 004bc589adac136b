"""Reports: tables (Markdown, LaTeX), plots and an HTML gallery built from run.json records."""
