"""How explainers and networks are judged: faithfulness curves, sanity checks, reliance on a shortcut."""
