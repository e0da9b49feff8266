"""Reports built from the build record: the build's report (build.py), which every output
reads, and the outputs themselves: the merged JUnit file, the job summary, annotations, and
the log's text. Nothing here knows GitHub's API or the runner: github/ sends what this makes."""
