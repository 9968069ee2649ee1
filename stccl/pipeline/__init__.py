"""The reproduction: params and paths, notebook steps, ablation grid, papermill runner, report."""
