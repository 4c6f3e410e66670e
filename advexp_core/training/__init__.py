"""The paper's training recipes: the loop and the robust (Lipschitz-bounded) loss."""
