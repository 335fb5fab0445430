"""The peer comparison behind ``fastctr bench``: fastctr against Vowpal Wabbit, River,
scikit-learn and LightGBM on the same rows. An application on top of the library; the core
never imports it."""
