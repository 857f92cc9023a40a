"""Virtual SIM tests. Hypothesis budgets are set per test (@settings), never globally, so
other parts' profiles are left alone."""
