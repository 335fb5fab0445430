"""Models: the estimator base (its hooks declared abstract), FTRL, FM and FFM, their typed
state and hyperparameters, and the contract checks every estimator passes."""
