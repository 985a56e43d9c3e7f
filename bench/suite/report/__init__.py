"""bench/results.md from the runs: the data (model), one module per section, and the document around them."""
