"""Reports in one place: report.md of each kind of report (accuracy.py for a classifier's run, perplexity.py for a
causal LM's), report.html and the comparison page (html.py, with the plots of plots.py), compress compare (compare.py)
and the sweep summary (sweep.py). They read report.json and sweep.json; they run nothing."""
