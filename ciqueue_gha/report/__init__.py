"""Reports built from the build record: the merged JUnit file and the outcome tally."""
