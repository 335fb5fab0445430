"""Online training: the train loop with progressive validation, kernel warm-up and metrics."""
